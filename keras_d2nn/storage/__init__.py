"""Writing outputs so that a killed or failed run loses nothing.

`atomic_output` writes one file or directory beside its destination and
moves it into place only once it is whole; `staged_run_folder` does the
same for a folder of outputs written together (a train job's report,
model and plots).
"""

from keras_d2nn.storage.atomic_files import atomic_output
from keras_d2nn.storage.atomic_files import write_text_atomically
from keras_d2nn.storage.run_folder import OutputNotWritable
from keras_d2nn.storage.run_folder import check_file_writable
from keras_d2nn.storage.run_folder import check_writable
from keras_d2nn.storage.run_folder import recover_run_folder
from keras_d2nn.storage.run_folder import staged_run_folder

__all__ = [
    "OutputNotWritable",
    "atomic_output",
    "check_file_writable",
    "check_writable",
    "recover_run_folder",
    "staged_run_folder",
    "write_text_atomically",
]
