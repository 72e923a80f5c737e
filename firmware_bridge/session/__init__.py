"""Session files (HDF5): the contract between recording, simulation, the runtime and training.

`schema.py` holds the contract (THE dataset list, attributes, `Session`), `reader.py` reads a file,
`validator.py` checks one, `writer.py` writes one. Import the public names from here.
"""

from firmware_bridge.session.reader import read_session
from firmware_bridge.session.schema import DATASETS, SCHEMA_VERSION, DatasetSpec, Session, SessionFormatError
from firmware_bridge.session.validator import validate_session
from firmware_bridge.session.writer import SessionWriter

__all__ = [
    "DATASETS",
    "SCHEMA_VERSION",
    "DatasetSpec",
    "Session",
    "SessionFormatError",
    "SessionWriter",
    "read_session",
    "validate_session",
]
