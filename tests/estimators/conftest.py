import sys
from pathlib import Path

# helpers of this folder (linreg.py) importable as top-level modules
sys.path.insert(0, str(Path(__file__).parent))
