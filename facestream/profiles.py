"""Deployment profiles: the match-threshold policy an operator cannot undercut by accident.

=============  =================  ===============  ==========================================
profile        default threshold  lowest allowed   meant for
=============  =================  ===============  ==========================================
general        80                 0                access control, photo organisation, search
public-safety  99                 99               any use that can lead to action against a
                                                   person (AWS's own guidance for law
                                                   enforcement is 99)
=============  =================  ===============  ==========================================

Chosen by ``--profile``, else ``FACESTREAM_PROFILE``, else the deployment's config (``configured``),
else ``general``. The CLI's ``--profile`` (``search``, ``stream``, ``demo``, ``python -m
pipelines.stream``) sets ``FACESTREAM_PROFILE`` for its own process, so every threshold check in
that process and in the Ray workers it starts sees the same profile. What 80 and 99 mean
as false-match rates for each model on our labelled data is in README ("Similarity scale").

Keys, too: ``public-safety`` refuses a key that holds admin together with indexer, searcher or
reviewer (separation of duties), and a searcher key without a bound purpose; ``general``
allows both (one purpose-bound key can run an SDK example end to end).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from facestream.errors import InvalidParameter
from facestream.similarity import DEFAULT_MATCH_THRESHOLD

#: roles that act on faces; the public-safety profile keeps them away from admin keys
OPERATIONAL_ROLES = frozenset({"indexer", "searcher", "reviewer"})


@dataclass(frozen=True)
class Profile:
    name: str
    default_threshold: float
    min_threshold: float
    #: separation of duties: no key may hold admin together with indexer/searcher/reviewer
    separate_admin: bool = False
    #: a key with the searcher role must be bound to a purpose (``keys create --purpose``)
    searcher_needs_purpose: bool = False

    def check_key(self, roles: frozenset[str] | set[str], purpose: str | None) -> None:
        """Refuse a key this profile does not allow: at creation and at every use (a key made
        under ``general`` stops working when the deployment moves to ``public-safety``)."""
        if self.separate_admin and "admin" in roles and roles & OPERATIONAL_ROLES:
            mixed = ", ".join(sorted(roles & OPERATIONAL_ROLES))
            raise InvalidParameter(
                f"the {self.name!r} deployment profile separates duties: a key may not hold admin "
                f"together with {mixed}; make one key per duty"
            )
        if self.searcher_needs_purpose and "searcher" in roles and not (purpose or "").strip():
            raise InvalidParameter(
                f"the {self.name!r} deployment profile needs a purpose on every searcher key "
                "(keys create --purpose 'case id or reason')"
            )

    def threshold(self, requested: float | None) -> float:
        """The threshold to use: the profile default, or a requested one at or above the floor."""
        if requested is None:
            return self.default_threshold
        if not 0.0 <= requested <= 100.0:
            raise InvalidParameter(f"threshold must be in [0, 100], got {requested}")
        if requested < self.min_threshold:
            raise InvalidParameter(
                f"threshold {requested} is below the floor of {self.min_threshold} set by the "
                f"{self.name!r} deployment profile"
            )
        return float(requested)


PROFILES: dict[str, Profile] = {
    "general": Profile("general", default_threshold=DEFAULT_MATCH_THRESHOLD, min_threshold=0.0),
    "public-safety": Profile(
        "public-safety",
        default_threshold=99.0,
        min_threshold=99.0,
        separate_admin=True,
        searcher_needs_purpose=True,
    ),
}


def resolve_profile(name: str | None = None, *, configured: str | None = None) -> Profile:
    """The profile: ``name`` (a flag) > ``FACESTREAM_PROFILE`` > ``configured`` > ``general``."""
    chosen = name or os.environ.get("FACESTREAM_PROFILE") or configured or "general"
    try:
        return PROFILES[chosen]
    except KeyError:
        raise InvalidParameter(f"profile {chosen!r}: expected one of {sorted(PROFILES)}") from None


def apply_profile_flag(name: str | None) -> Profile:
    """A command line's ``--profile``: it wins over the environment for this process (and the
    Ray workers it starts, which inherit the environment). Returns the profile in force."""
    if name is not None:
        profile = resolve_profile(name)
        os.environ["FACESTREAM_PROFILE"] = profile.name
        return profile
    return resolve_profile()


ProfileName = Literal["general", "public-safety"]


def adopt_configured(configured: str | None) -> Profile:
    """A deployment config's ``profile``: in force for this process (and the Ray workers it
    starts) unless ``FACESTREAM_PROFILE`` or a ``--profile`` flag already chose one."""
    if configured is not None and not os.environ.get("FACESTREAM_PROFILE"):
        os.environ["FACESTREAM_PROFILE"] = resolve_profile(configured=configured).name
    return resolve_profile()
