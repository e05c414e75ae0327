"""Phone numbers: a strict check of the raw text, then libphonenumber, then what may place or take calls.

libphonenumber alone accepts fictional 555-01xx numbers and premium-rate numbers, and silently drops
extensions and invisible direction characters, so the raw text is checked first: "+" and 8-15 digits.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import Enum

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder
from phonenumbers import timezone as pn_timezone

from nhm_platform.errors import FieldViolation

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_CALLER_ID_TYPES = {PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE,
                    PhoneNumberType.VOIP}
_DESTINATION_TYPES = _CALLER_ID_TYPES | {PhoneNumberType.TOLL_FREE, PhoneNumberType.PERSONAL_NUMBER,
                                         PhoneNumberType.PAGER, PhoneNumberType.UAN}


class Purpose(Enum):
    CALLER_ID = "caller_id"      # one of our outbound numbers: geographic, can place calls
    DESTINATION = "destination"  # a prospect: any number a person can be reached on


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    country: str
    area_code: str
    exchange: str
    region: str
    time_zone: str


def is_e164(raw: str) -> bool:
    """Whether raw is written as E.164 ("+" and 8-15 digits): the syntax alone, no number plan."""
    return _E164.fullmatch(raw) is not None


class InvalidPhoneNumber(ValueError):
    def violation(self, field: str) -> FieldViolation:
        return FieldViolation(field, str(self))


# Numbers parsed recently, kept as parsed: a dialer calls the same prospects again and again, and a full parse
# (libphonenumber's validity, type, geocoding and time zone lookups) costs ~0.1-0.2 ms, a sixth of an
# allocation's own work. 32,768 entries take about 20 MB. Refusals are not kept (an exception is not cached).
_PARSED_CACHE_SIZE = 32_768


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def parse_phone_number(raw: str, purpose: Purpose = Purpose.CALLER_ID) -> PhoneNumber:
    """Validate and describe an E.164 number; raises InvalidPhoneNumber saying what is wrong."""
    if not raw:
        raise InvalidPhoneNumber("required: an E.164 number such as +14155550123")
    if not is_e164(raw):
        raise InvalidPhoneNumber("must be E.164: '+' then 8 to 15 digits, no spaces or other characters")
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    # Each libphonenumber query below re-derives the region (costly for NANP's many regions), so the region,
    # the type and whether that type is geographic are derived once and passed on (a bulk import parses
    # thousands of numbers per request).
    country = phonenumbers.region_code_for_number(parsed)
    if not phonenumbers.is_valid_number_for_region(parsed, country):  # is_valid_number, region reused
        raise InvalidPhoneNumber("not a valid, assigned number range")
    country = country or ""
    national = str(parsed.national_number)
    is_nanp = parsed.country_code == 1
    if is_nanp and national[3:6] == "555" and national[6:8] == "01":
        raise InvalidPhoneNumber("555-01xx numbers are fictional and never reach anyone")
    number_type = phonenumbers.number_type(parsed)
    allowed = _CALLER_ID_TYPES if purpose is Purpose.CALLER_ID else _DESTINATION_TYPES
    if number_type not in allowed:
        kind = _type_name(number_type)
        if purpose is Purpose.CALLER_ID:
            raise InvalidPhoneNumber(f"a {kind} number cannot be an outbound caller ID; use a geographic number")
        raise InvalidPhoneNumber(f"a {kind} number cannot be called")
    type_geographic = phonenumbers.is_number_type_geographical(number_type, parsed.country_code)
    geographic = type_geographic or number_type is PhoneNumberType.VOIP
    if purpose is Purpose.CALLER_ID and not geographic:
        raise InvalidPhoneNumber("non-geographic numbers cannot be outbound caller IDs")
    area_len = 3 if is_nanp else phonenumbers.length_of_geographical_area_code(parsed)
    area_code = national[:area_len] if area_len else ""
    exchange = national[3:6] if is_nanp else ""
    zones = (pn_timezone.time_zones_for_geographical_number(parsed) if type_geographic
             else pn_timezone.time_zones_for_number(parsed))
    zones = [z for z in zones if z != "Etc/Unknown"]
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        country=country,
        area_code=area_code,
        exchange=exchange,
        region=_region(parsed, country, type_geographic),
        time_zone=zones[0] if zones else "",
    )


def _type_name(number_type: int) -> str:
    for name in dir(PhoneNumberType):
        if not name.startswith("_") and getattr(PhoneNumberType, name) == number_type:
            return name.lower().replace("_", "-")
    return "unknown"


def _region(parsed: phonenumbers.PhoneNumber, country: str, type_geographic: bool) -> str:
    # description_for_number, without re-deriving the type of a number already known valid and geographic.
    description = (geocoder.description_for_valid_number(parsed, "en") if type_geographic
                   else geocoder.description_for_number(parsed, "en")) or ""
    if country in ("US", "CA"):
        _, _, tail = description.rpartition(", ")
        if len(tail) == 2 and tail.isupper():
            return tail
        return _NANP_REGIONS.get(description, "")
    return description


_NANP_REGIONS = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC", "Washington, D.C.": "DC",
    "Alberta": "AB", "British Columbia": "BC", "Manitoba": "MB", "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL", "Nova Scotia": "NS", "Ontario": "ON", "Prince Edward Island": "PE",
    "Quebec": "QC", "Saskatchewan": "SK", "Yukon": "YT", "Northwest Territories": "NT", "Nunavut": "NU",
}
