"""The command line's verbs: thin argparse layers over the library (`python -m difflab <verb> ...`)."""
