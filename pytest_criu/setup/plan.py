"""What a run changed (or, with ``--check``, would change)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Plan:
    """Collects changes; in check mode it refuses them, so that nothing is touched."""

    check: bool
    say: Callable[[str], None]
    changes: list[str] = field(default_factory=list)
    tidied: list[str] = field(default_factory=list)

    def change(self, what: str) -> bool:
        """Record ``what`` (imperative: "install criu"); True when the caller should do it."""
        self.changes.append(what)
        self.say(f"would {what}" if self.check else what)
        return not self.check

    def tidy(self, what: str) -> bool:
        """Like :meth:`change`, for clean-up that leaves the set-up as it was (leftovers)."""
        self.tidied.append(what)
        self.say(f"would {what}" if self.check else what)
        return not self.check

    def summary(self) -> str:
        verb = "would change" if self.check else "changed"
        text = f"{verb}: " + "; ".join(self.changes) if self.changes else "nothing to change"
        if self.tidied:
            text += f" ({'would also' if self.check else 'also'}: {'; '.join(self.tidied)})"
        return text
