"""``python -m promptopt`` runs the CLI."""

from promptopt.cli import main

if __name__ == "__main__":
    main()
