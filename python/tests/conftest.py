import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The golden-script command encoder (docs/FORMAT.md §5) shared with the firmware generator.
sys.path.insert(0, str(ROOT / "scripts"))
