import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Folder holding the real extracted datasets (RECSYS_DATA_DIR, else ../shared/data)."""
    env = os.environ.get("RECSYS_DATA_DIR")
    path = Path(env) if env else SHARED
    if not (path / "ml-100k" / "u.data").is_file():
        pytest.skip(f"real MovieLens files not found under {path}; set RECSYS_DATA_DIR")
    return path
