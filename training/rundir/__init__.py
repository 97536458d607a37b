"""The run folder: its layout, and how it is written, locked, read, checked and cleaned. No Keras.

Everyone else asks this package about a run folder's files; nobody spells their names:

    layout.py    the file names and what each holds; ``RunDirError``
    writing.py   atomic replacement, appends that never follow a link, a full disk's message
    recorder.py  events.jsonl and metrics.csv as the run goes
    lock.py      one process writes a run folder at a time
    naming.py    a new run's folder: its name (no collisions) and taking it
    cleanup.py   what a killed run left behind
    reading.py   config.json, summary.json, checkpoint/state.json, events.jsonl
    resume.py    "is it resumable?": the checks a resume makes before it writes anything
    labels.py    the class names (labels.json, labels.txt)

What keeps the user's files safe:

- A new run is written only into an empty or new folder (``prepare_run_dir``).
- One process writes a run folder at a time: an OS lock on ``.lock``, held for the whole
  session and released by the OS when the process ends, however it ends.
- Nothing is written through a symbolic link: appends open with ``O_NOFOLLOW``; replaced
  files are written to a fresh temporary file and renamed over the name (a rename replaces
  a link, never its target); ``checkpoint/`` must be a real folder. A resume refuses a
  folder whose run files are links at all (``require_run_folder``), so it never reads a
  config or weights file from elsewhere either.
- Replaced files (best.keras, summary.json, ...) are written atomically: a temporary file
  beside the target, fsynced, then ``os.replace``; a crash leaves the old file or the new one.
  The temporary files a crash leaves behind have names only this package makes and are
  removed on the next start of that folder (``remove_leftovers``).
- A resume checks the folder before it writes anything (``inspect_resume``).
"""

from training.rundir.cleanup import clear_unfinished_start, remove_leftovers
from training.rundir.layout import (
    BEST_MODEL,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    DATA_FILES_FILE,
    DATA_REPORT_FILE,
    EVALUATION_DIR,
    EVENTS_FILE,
    KERAS_TEMP_DIR,
    LABEL_FILES,
    LOCK_FILE,
    METRICS_COLUMNS,
    METRICS_FILE,
    PHASES,
    REPLACED_FILES,
    RUN_FILES,
    SNAPSHOT_DIR,
    STATE_FILE,
    SUMMARY_FILE,
    WEIGHTS_NAME,
    RunDirError,
    absolute_run_dir,
)
from training.rundir.lock import RunLock, lock_holder, lock_run_dir
from training.rundir.naming import next_run_dir, prepare_run_dir
from training.rundir.reading import (
    STATE_KEYS,
    read_checkpoint_state,
    read_events,
    read_metrics,
    read_run_config,
    read_summary,
    state_problem,
)
from training.rundir.recorder import RunRecorder, fan_out, write_metrics_csv
from training.rundir.resume import (
    ResumeCheck,
    ResumePlan,
    check_resume,
    inspect_resume,
    require_run_folder,
    resume_problem,
)
from training.rundir.writing import (
    atomic_path,
    checkpoint_folder,
    disk_full_message,
    export_best_model,
    is_disk_full,
    keras_temp_folder,
    open_for_append,
    verify_keras_archive,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "BEST_MODEL", "CHECKPOINT_DIR", "EVALUATION_DIR", "SNAPSHOT_DIR", "CONFIG_FILE", "DATA_FILES_FILE", "DATA_REPORT_FILE", "EVENTS_FILE",
    "KERAS_TEMP_DIR", "LABEL_FILES", "LOCK_FILE", "METRICS_COLUMNS", "METRICS_FILE", "PHASES",
    "REPLACED_FILES", "RUN_FILES", "STATE_FILE", "STATE_KEYS", "SUMMARY_FILE", "WEIGHTS_NAME",
    "ResumeCheck", "ResumePlan", "RunDirError", "RunLock", "RunRecorder",
    "absolute_run_dir", "atomic_path", "check_resume", "checkpoint_folder",
    "clear_unfinished_start", "disk_full_message", "export_best_model", "fan_out",
    "inspect_resume", "is_disk_full", "keras_temp_folder", "lock_holder", "lock_run_dir",
    "next_run_dir", "open_for_append", "prepare_run_dir", "read_checkpoint_state", "read_events",
    "read_metrics", "read_run_config", "read_summary", "remove_leftovers", "require_run_folder", "resume_problem",
    "state_problem", "verify_keras_archive", "write_json_atomic", "write_metrics_csv",
    "write_text_atomic",
]
