"""Validators for single values of Docker's JSON requests.

Each parser takes a decoded JSON value and the name of the field it came
from, and returns a typed value or raises InvalidRequest naming the field,
the value and what was expected.

Docker encodes its requests with Go's encoding/json and no field is
`omitempty`, so `""`, `null` and missing keys all arrive. Like Go's decoder,
these parsers read `null` and a missing key as the zero value of the field
(empty string, false, empty map or list). Required fields then fail with
"missing <field>".
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from kuryrnet import model
from kuryrnet.errors import InvalidRequest


class _Missing:
    """Type of MISSING, the value of a key absent from a JSON object."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# Values in error messages are cut to this many characters, so a huge
# request cannot make a huge error or log line.
MAX_SHOWN_CHARS = 100

DOCKER_ID_PATTERN = re.compile(r"[0-9a-f]{64}")
UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
MAC_PATTERN = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
PREFIX_LENGTH_PATTERN = re.compile(r"/[0-9]{1,3}")
UNSIGNED_PATTERN = re.compile(r"[0-9]{1,9}")

# Linux PATH_MAX, including the terminating NUL.
MAX_PATH_BYTES = 4096
# Pool ids are opaque strings that this daemon's IPAM driver created.
MAX_POOL_ID_CHARS = 1024
# Neutron's limit on resource names.
MAX_NEUTRON_NAME_CHARS = 255

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def show(value: Any) -> str:
    """Render a JSON value for an error or log message, escaped and cut to MAX_SHOWN_CHARS."""
    if value is MISSING:
        return "(missing)"
    if isinstance(value, str):
        text = json.dumps(value[:MAX_SHOWN_CHARS + 1])
        if len(value) > MAX_SHOWN_CHARS:
            return f'{text[:MAX_SHOWN_CHARS]}..." ({len(value)} characters)'
        return text
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return f"<{type(value).__name__}>"
    if len(text) > MAX_SHOWN_CHARS:
        return f"{text[:MAX_SHOWN_CHARS]}... ({len(text)} characters)"
    return text


def invalid(field: str, value: Any, expected: str) -> InvalidRequest:
    """Build the InvalidRequest for `field` containing `value` when `expected` was required."""
    if value is MISSING or value is None:
        return InvalidRequest(f"missing {field}: expected {expected}")
    return InvalidRequest(f"invalid {field} {show(value)}: expected {expected}")


def member(obj: dict, key: str) -> Any:
    """Return obj[key], or MISSING when the key is absent."""
    return obj.get(key, MISSING)


def json_type_name(value: Any) -> str:
    """Return the JSON name of the type of a decoded value."""
    if value is MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_object(value: Any, field: str) -> dict:
    """Parse a JSON object. Null and missing give an empty dict."""
    if value is MISSING or value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"invalid {field} {show(value)}: expected a JSON object, got {json_type_name(value)}")
    return value


def parse_array(value: Any, field: str) -> list:
    """Parse a JSON array. Null and missing give an empty list."""
    if value is MISSING or value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(
            f"invalid {field} {show(value)}: expected a JSON array, got {json_type_name(value)}")
    return value


def parse_string(value: Any, field: str) -> str:
    """Parse a JSON string. Null and missing give ""."""
    if value is MISSING or value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(
            f"invalid {field} {show(value)}: expected a string, got {json_type_name(value)}")
    return value


def parse_bool(value: Any, field: str) -> bool:
    """Parse a JSON boolean. Null and missing give False.

    The strings "true" and "false" are accepted too, because option maps that
    pass through swarm carry their values as strings.
    """
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidRequest(
        f"invalid {field} {show(value)}: expected a boolean, got {json_type_name(value)}")


def parse_int(value: Any, field: str, minimum: int, maximum: int) -> int:
    """Parse a JSON integer between minimum and maximum, rejecting booleans and fractions."""
    expected = f"an integer between {minimum} and {maximum}"
    if value is MISSING or value is None:
        raise invalid(field, value, expected)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            f"invalid {field} {show(value)}: expected {expected}, got {json_type_name(value)}")
    if not minimum <= value <= maximum:
        raise invalid(field, value, expected)
    return value


def parse_docker_id(value: Any, field: str) -> str:
    """Parse a Docker network or endpoint id: 64 lowercase hexadecimal characters."""
    text = parse_string(value, field)
    if not DOCKER_ID_PATTERN.fullmatch(text):
        raise invalid(field, value, "a Docker id of 64 lowercase hexadecimal characters")
    return text


def parse_pool_id(value: Any, field: str) -> str:
    """Parse a pool id that RequestPool returned earlier: a printable, non-empty string."""
    text = parse_string(value, field)
    if not text or len(text) > MAX_POOL_ID_CHARS or not text.isprintable():
        raise invalid(
            field, value,
            f"the PoolID that RequestPool returned (printable, 1 to {MAX_POOL_ID_CHARS} characters)")
    return text


def parse_address_space(value: Any, field: str) -> str:
    """Parse an IPAM address space name, which may be empty."""
    text = parse_string(value, field)
    if len(text) > MAX_NEUTRON_NAME_CHARS or not text.isprintable():
        raise invalid(field, value,
                      f"an address space name of printable characters, at most "
                      f"{MAX_NEUTRON_NAME_CHARS}")
    return text


def _check_ip_text(text: str, field: str, value: Any, expected: str) -> None:
    # ipaddress accepts IPv6 zone ids ("fe80::1%eth0"), which are meaningless
    # in a pool or an address assignment.
    if "%" in text or not text.isascii():
        raise invalid(field, value, expected)


def parse_ip_network(value: Any, field: str, *, version: int | None = None) -> model.IPNetwork | None:
    """Parse a CIDR such as "10.0.0.0/24" with no host bits set. "" and null give None."""
    article = f"an IPv{version}" if version else "a"
    expected = f"{article} CIDR such as {_example_network(version)} with no host bits set"
    text = parse_string(value, field)
    if not text:
        return None
    _check_ip_text(text, field, value, expected)
    if "/" not in text or not PREFIX_LENGTH_PATTERN.fullmatch(text[text.index("/"):]):
        raise invalid(field, value, expected)
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise invalid(field, value, expected) from None
    if version and network.version != version:
        raise invalid(field, value, expected)
    return network


def parse_ip_address(value: Any, field: str, *, version: int | None = None) -> model.IPAddress | None:
    """Parse a plain IP address such as "10.0.0.5". "" and null give None."""
    family = f"IPv{version} " if version else ""
    expected = f"an {family}address such as {_example_address(version)} without a prefix length"
    text = parse_string(value, field)
    if not text:
        return None
    _check_ip_text(text, field, value, expected)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise invalid(field, value, expected) from None
    if version and address.version != version:
        raise invalid(field, value, expected)
    return address


def parse_ip_interface(value: Any, field: str, *, version: int | None = None) -> model.IPInterface | None:
    """Parse an address with its prefix length such as "10.0.0.5/24". "" and null give None."""
    family = f"IPv{version} " if version else ""
    expected = (f"an {family}address with a prefix length such as "
                f"{_example_address(version)}/{64 if version == 6 else 24}")
    text = parse_string(value, field)
    if not text:
        return None
    _check_ip_text(text, field, value, expected)
    if "/" not in text or not PREFIX_LENGTH_PATTERN.fullmatch(text[text.index("/"):]):
        raise invalid(field, value, expected)
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise invalid(field, value, expected) from None
    if version and interface.version != version:
        raise invalid(field, value, expected)
    return interface


def _example_network(version: int | None) -> str:
    return "fd00::/64" if version == 6 else "10.0.0.0/24"


def _example_address(version: int | None) -> str:
    return "fd00::5" if version == 6 else "10.0.0.5"


def check_mac_bytes(mac: bytes, field: str, value: Any, expected: str) -> str:
    """Return the six bytes of a unicast MAC as "aa:bb:cc:dd:ee:ff"."""
    if len(mac) != 6 or mac[0] & 1 or not any(mac):
        raise invalid(field, value, expected)
    return ":".join(f"{byte:02x}" for byte in mac)


def parse_mac_address(value: Any, field: str) -> str | None:
    """Parse a MAC in colon form, returned lowercase. "" and null give None.

    Multicast and all-zero MACs are rejected because Neutron rejects them
    as port addresses.
    """
    expected = "a unicast MAC address such as 02:42:0a:00:00:05"
    text = parse_string(value, field)
    if not text:
        return None
    if not MAC_PATTERN.fullmatch(text):
        raise invalid(field, value, expected)
    return check_mac_bytes(bytes.fromhex(text.replace(":", "")), field, value, expected)


def parse_sandbox_key(value: Any, field: str) -> str:
    """Parse the path of a network namespace, such as /var/run/docker/netns/0123456789ab."""
    expected = ("an absolute path of a network namespace such as "
                "/var/run/docker/netns/0123456789ab, without NUL, control characters or '..'")
    text = parse_string(value, field)
    if (not text.startswith("/")
            or len(text.encode("utf-8", "surrogatepass")) >= MAX_PATH_BYTES
            or not text.isprintable()
            or ".." in text.split("/")):
        raise invalid(field, value, expected)
    return text


def parse_string_map(value: Any, field: str) -> dict[str, str]:
    """Parse a JSON object whose values are all strings. Null and missing give {}."""
    obj = parse_object(value, field)
    for key, item in obj.items():
        if not isinstance(item, str):
            raise InvalidRequest(
                f"invalid {field}[{show(key)}] {show(item)}: expected a string, "
                f"got {json_type_name(item)}")
    return dict(obj)


def parse_uuid_text(text: str, field: str) -> str:
    """Parse a UUID in its 8-4-4-4-12 form, returned lowercase."""
    if not UUID_PATTERN.fullmatch(text):
        raise invalid(field, text, "a UUID such as 3f1e9c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b")
    return text.lower()


def parse_name_text(text: str, field: str) -> str:
    """Parse a Neutron resource name: printable, 1 to 255 characters."""
    if not text or len(text) > MAX_NEUTRON_NAME_CHARS or not text.isprintable():
        raise invalid(field, text,
                      f"a name of 1 to {MAX_NEUTRON_NAME_CHARS} printable characters")
    return text


def parse_bool_text(text: str, field: str) -> bool:
    """Parse an option value such as "true" or "false"."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise invalid(field, text, f"one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def parse_int_text(text: str, field: str, minimum: int, maximum: int) -> int:
    """Parse an option value holding a decimal integer between minimum and maximum."""
    expected = f"an integer between {minimum} and {maximum}"
    word = text.strip()
    # A pattern, not int() alone: int() also reads "1_000", "+5" and non-ASCII digits.
    if not UNSIGNED_PATTERN.fullmatch(word):
        raise invalid(field, text, expected)
    number = int(word)
    if not minimum <= number <= maximum:
        raise invalid(field, text, expected)
    return number
