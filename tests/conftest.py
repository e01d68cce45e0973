import sys
from pathlib import Path

# tests/ helpers (tinytask.py) importable as top-level modules, also from subprocesses.
sys.path.insert(0, str(Path(__file__).parent))
