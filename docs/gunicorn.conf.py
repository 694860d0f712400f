# gunicorn configuration for the rune_fast policy decision point, for people
# who run gunicorn themselves instead of `rune serve`:
#
#   PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) \
#   gunicorn -c docs/gunicorn.conf.py 'rune_fast.server:create_app("policies/")'
#
# (`rune serve policies/` does all of this for you.)
import multiprocessing
import os

# Where to listen. Keep the decision point on loopback or a private network:
# it has no authentication of its own besides the admin token.
bind = os.environ.get("RUNE_BIND", "127.0.0.1:8181")

# One PolicyStore (one compiled engine + one file watcher) per worker. The
# engine is CPU-bound and lock-free, so one sync worker per core is the
# sweet spot; "gthread" helps only when clients hold idle keep-alive
# connections, "uvicorn_worker.UvicornWorker" serves the ASGI variant
# (then use 'rune_fast.server:create_asgi_app("policies/")').
workers = int(os.environ.get("RUNE_WORKERS", multiprocessing.cpu_count()))
worker_class = "sync"

# Do NOT preload: the policy must be loaded after the fork (its watcher
# threads would not survive it). The app is safe with --preload anyway (a
# child drops whatever its parent created), it just gains nothing.
preload_app = False

# A decision takes microseconds; a stuck worker is killed after `timeout`.
# On SIGTERM in-flight requests get `graceful_timeout` seconds to finish.
timeout = 30
graceful_timeout = 10
keepalive = 5

# Access logs cost throughput; the decision log (--decision-log with
# `rune serve`, decision_log= with create_app) is the audit trail.
accesslog = None
errorlog = "-"
loglevel = "info"

# gunicorn >= 25 opens a control socket at a fixed per-user path; two servers
# on one machine would collide. The decision point does not need it.
control_socket_disable = True

# The two hooks the decision point needs:
# - post_worker_init: load the policy in each worker before it accepts
#   connections (without it, the first request of each worker loads it);
# - child_exit: retire a dead worker's live metrics when
#   PROMETHEUS_MULTIPROC_DIR is set (multi-process /metrics).
from rune_fast.server.hooks import child_exit, post_worker_init  # noqa: E402,F401
