import sys
from pathlib import Path

# tests/ holds the literal reference modules shared with benchmarks/
sys.path.insert(0, str(Path(__file__).parent))
