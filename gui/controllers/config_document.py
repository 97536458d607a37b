"""The settings being edited: the config the forms describe, its file, whether it is saved.

QSettings holds UI state only (the recent data folders here), never training settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QSettings, Signal

from gui.forms import ConfigForm
from training.api import Config, ConfigError

RECENT_LIMIT = 8
RECENT_KEY = "data/recentFolders"


class ConfigDocument(QObject):
    """The window's config, read back from its forms after every edit.

    ``config`` is the last config the forms gave; while they hold something the engine
    refuses, ``error`` says why (and ``current_config()`` is None).
    """

    changed = Signal()  # the config, its error, its file or its saved state changed

    def __init__(self, config: Config, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.error = ""
        self.path: Path | None = None
        self.settings = settings
        self._saved = config.to_dict()
        self._forms: list[ConfigForm] = []
        self._check: Callable[[Config], str] = lambda config: ""

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
        return self.path.name if self.path else "untitled"

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
        self._saved = self.config.to_dict()
        self.changed.emit()

    # -- recent data folders -----------------------------------------------------------------
    def recent_folders(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember_folder(self, folder: str) -> list[str]:
        """Puts ``folder`` first in the recent folders; returns them."""
        recent = ([folder] + [f for f in self.recent_folders() if f != folder])[:RECENT_LIMIT]
        self.settings.setValue(RECENT_KEY, recent)
        return recent
