"""Column headers that name personal data: hotspots is place-based, so a mapping reads the incident's
columns, never the person's. ``draft-mapping`` leaves such columns out; ``load`` warns when a mapping
reads one (``personal_header``)."""
from __future__ import annotations

import re

# Header words of personal data: the column is left out whatever its values.
PERSONAL_WORDS = {"name", "names", "forename", "forenames", "surname", "firstname", "lastname", "fullname",
                  "initials", "dob", "birth", "gender", "sex", "ethnic", "ethnicity", "nhs", "email", "phone",
                  "telephone", "mobile", "tel", "home", "resident", "notes", "note", "narrative", "details",
                  "description", "comment", "comments", "text", "summary", "account", "circumstances", "age",
                  "nino", "pnc", "cro", "crn", "upn", "patient", "complainant", "informant", "officer",
                  "caller", "contact", "religion", "nationality", "disability", "school", "pupil", "person"}
# Header words of a place: a free-text location, unless the column is personal ("home address").
PLACE_WORDS = {"location", "place", "where", "street", "road", "venue", "site", "address", "station",
               "postcode", "locality", "landmark"}


def words(header: str) -> set[str]:
    """The words of a column header: 'Assault_Location_Free_Text' -> {assault, location, free, text}."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(header))
    return set(re.split(r"[^a-z0-9]+", s.lower())) - {""}


def names_place(name: str) -> bool:
    """Whether a header names a place ('Incident address'), not a person's ('Home postcode')."""
    found = words(name)
    return bool(found & PLACE_WORDS) and not found & {"home", "resident", "residence", "patient", "pupil"}


def personal_header(name: str) -> str | None:
    """Why a column's header says it holds personal data ("header: dob"), or None: its words, unless they
    name a place ('Incident address', 'Assault location free text' are places; 'Home postcode' is not)."""
    found = words(name)
    person = found & {"name", "forename", "surname", "narrative"}
    if found & PERSONAL_WORDS and not (names_place(name) and not person):
        return f"header: {', '.join(sorted(found & PERSONAL_WORDS))}"
    return None
