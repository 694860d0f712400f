"""Language front end: ``.rune`` text -> checked AST.

``lexer`` tokenizes, ``rules_parser`` / ``policy_parser`` parse the Datalog
and Cedar sections, ``sources`` reads CSV / JSON-lines files, ``parser`` turns
a file or bundle into the AST of ``ast``, and ``checks`` validates the whole
program (safety, stratification, arities). Nothing here knows how rules are
evaluated or policies decided.
"""
