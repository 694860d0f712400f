"""Hot reload: ``store.PolicyStore`` (the one swapped attribute), ``watch`` (watchdog
observer with debounce) and ``metrics`` (reload statistics as Prometheus collectors)."""
