"""Entry point for `python -m tokenomics` and for the zipapp."""

from tokenomics.cli.main import main

if __name__ == "__main__":
    main()
