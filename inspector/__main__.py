"""`python -m inspector ...` is the `inspector` program."""

from inspector.cli import run

if __name__ == "__main__":
    run()
