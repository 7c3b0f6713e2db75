"""``python -m thermo.cli`` runs the ``thermo`` command (used under mpiexec)."""
import sys

from thermo.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
