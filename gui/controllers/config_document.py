"""The settings being edited: the config the forms describe, its file, whether it is saved,
and the last session's settings, which come back at the next start.

QSettings holds UI state only (the recent data folders, which file was open), never training
settings: the last session's config is a config JSON file of its own beside the QSettings
file (``session_file``), which the CLI can read as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QIODevice, QObject, QSaveFile, QSettings, QStandardPaths, QTimer, Signal

from gui.forms import ConfigForm
from training.api import Config, ConfigError

RECENT_LIMIT = 8
RECENT_KEY = "data/recentFolders"
DOCUMENT_PATH_KEY = "session/documentPath"  # the config file the last session had open
SESSION_DEBOUNCE_MS = 500  # a burst of edits writes the session's settings once


def session_file(settings: QSettings) -> Path:
    """Where the last session's settings are kept: beside the QSettings file (so a test's
    temporary settings keep theirs apart), or in the app's config folder where QSettings
    lives in a registry (Windows)."""
    location = Path(settings.fileName())
    if location.is_absolute() and location.name:
        return location.with_name(f"{location.stem}-last-settings.json")
    folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation)
    return Path(folder or Path.home()) / "last-settings.json"


class ConfigDocument(QObject):
    """The window's config, read back from its forms after every edit.

    ``config`` is the last config the forms gave; while they hold something the engine
    refuses, ``error`` says why (and ``current_config()`` is None).
    """

    changed = Signal()  # the config, its error, its file or its saved state changed
    session_failed = Signal(str)  # the session's settings could not be written (why)

    def __init__(self, config: Config, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.error = ""
        self.path: Path | None = None
        self.origin = ""  # where settings without a file came from ("run_3 (resumed run)")
        self.settings = settings
        self._saved = config.to_dict()
        self._forms: list[ConfigForm] = []
        self._check: Callable[[Config], str] = lambda config: ""
        self._session_timer = QTimer(self, singleShot=True, interval=SESSION_DEBOUNCE_MS)
        self._session_timer.timeout.connect(self._on_session_timer_timeout)
        self.changed.connect(self._session_timer.start)

    def attach(self, forms: list[ConfigForm], check: Callable[[Config], str]) -> None:
        """Reads ``forms`` after each edit; ``check(config)`` may add a problem the config
        itself cannot know (e.g. an image size the chosen backbone cannot take)."""
        self._forms = list(forms)
        self._check = check
        for form in self._forms:
            form.changed.connect(self._on_form_changed)

    # -- the config ------------------------------------------------------------------------
    def build_config(self) -> Config:
        """The config the forms describe.

        Raises:
            ConfigError: a value or combination the engine refuses.
            ValueError: a field that cannot be read (e.g. hidden units text).
        """
        overrides: dict[str, Any] = {}
        for form in self._forms:
            overrides.update(form.values())
        return self.config.with_overrides(overrides)

    def current_config(self) -> Config | None:
        """The last valid config (None while the forms hold an invalid one)."""
        return None if self.error else self.config

    def set_config(self, config: Config, *, saved: bool = False) -> None:
        """Shows ``config`` in the forms; ``saved``: it is what the file holds."""
        self.config = config
        for form in self._forms:
            form.load(config)
        if saved:
            self._saved = config.to_dict()
        self.refresh()

    def apply_fix(self, fix: dict[str, Any]) -> None:
        """Applies a hint's suggested change to the settings.

        Raises:
            ConfigError: the engine refuses the changed config.
        """
        self.set_config(self.config.with_overrides(fix))

    def is_dirty(self) -> bool:
        return self.config.to_dict() != self._saved

    def display_name(self) -> str:
        return self.path.name if self.path else self.origin or "untitled"

    def show_run_config(self, config: Config, run_dir: str | Path) -> None:
        """Shows the config a resumed run trains with: the settings become that run's, with
        no file of their own (saving asks for one, never the run folder's config.json)."""
        self.path = None
        self.origin = f"{Path(run_dir).name} (resumed run)"
        self.set_config(config, saved=True)

    def refresh(self) -> None:
        """Reads the forms again (e.g. once the backbone catalog knows each minimum size)."""
        try:
            self.config = self.build_config()
            self.error = self._check(self.config)
        except (ConfigError, ValueError) as error:
            self.error = str(error)
        self.changed.emit()

    def _on_form_changed(self) -> None:
        self.refresh()

    # -- the file --------------------------------------------------------------------------
    def load(self, path: str | Path) -> None:
        """Loads a config file into the forms; it becomes the document's file.

        Raises:
            ConfigError: the file cannot be read or is not a valid config.
        """
        config = Config.load(path)
        self.path = Path(path)
        self.origin = ""
        self.set_config(config, saved=True)

    def save(self, path: str | Path) -> None:
        """Writes the config to ``path``, which becomes the document's file.

        Raises:
            ConfigError: the settings are not valid.
            OSError: the file cannot be written.
        """
        if self.error:
            raise ConfigError(f"The settings are not valid: {self.error}")
        self.config.save(path)
        self.path = Path(path)
        self.origin = ""
        self._saved = self.config.to_dict()
        self.changed.emit()

    # -- the last session --------------------------------------------------------------------
    def restore_session(self) -> str:
        """Takes the last session's settings (and its file, if it had one) in place of the
        current ones, before the forms show them. Returns what happened, for the status bar
        ("" when there was nothing to restore)."""
        location = session_file(self.settings)
        if not location.is_file():
            return ""
        try:
            config = Config.load(location)
        except ConfigError as error:
            return f"The settings of the last session could not be restored: {error}"
        self.config, self._saved, self.path, self.origin = config, config.to_dict(), None, ""
        file = str(self.settings.value(DOCUMENT_PATH_KEY, "") or "")
        if file:
            try:
                self._saved = Config.load(file).to_dict()  # unsaved changes stay unsaved
                self.path = Path(file)
            except ConfigError:
                pass  # the file is gone or changed beyond reading: the settings stay untitled
        return "Restored the settings of the last session" + (f" ({self.path.name})." if self.path else ".")

    def store_session(self, *, discard_changes: bool = False) -> None:
        """Writes the settings (the last valid ones) for the next start; ``discard_changes``
        writes what the file holds instead, so changes the user discarded do not come back.

        Raises:
            OSError: the settings file cannot be written.
        """
        self._session_timer.stop()
        config = Config.from_dict(self._saved) if discard_changes else self.config
        location = session_file(self.settings)
        location.parent.mkdir(parents=True, exist_ok=True)
        file = QSaveFile(str(location))  # written whole or not at all
        if not file.open(QIODevice.OpenModeFlag.WriteOnly):
            raise OSError(f"Cannot write {location}: {file.errorString()}")
        file.write(config.to_json().encode("utf-8"))
        if not file.commit():
            raise OSError(f"Cannot write {location}: {file.errorString()}")
        self.settings.setValue(DOCUMENT_PATH_KEY, str(self.path) if self.path else "")

    def _on_session_timer_timeout(self) -> None:
        try:
            self.store_session()
        except OSError as error:
            self.session_failed.emit(str(error))

    # -- recent data folders -----------------------------------------------------------------
    def recent_folders(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember_folder(self, folder: str) -> list[str]:
        """Puts ``folder`` first in the recent folders; returns them."""
        recent = ([folder] + [f for f in self.recent_folders() if f != folder])[:RECENT_LIMIT]
        self.settings.setValue(RECENT_KEY, recent)
        return recent
