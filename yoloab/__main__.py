"""`python -m yoloab`: the command line, for environments where the console script is not on PATH."""

from .cli.app import main

if __name__ == "__main__":
    main()
