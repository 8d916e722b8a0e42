"""``python -m chromexpr`` entry point (also what ``torchrun -m chromexpr`` runs)."""

from chromexpr.cli import main

if __name__ == "__main__":
    main()
