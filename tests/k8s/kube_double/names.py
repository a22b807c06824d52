"""Object name validation (part of the Kubernetes API server test double).

Implements the documented name rules of the API server: DNS-1123 subdomain (most kinds, <=253 chars), DNS-1123 label
(namespaces, <=63), DNS-1035 label (services, <=63), plus the Job rule that a Job name must be a valid label value
(<=63 chars) because it is copied into the ``job-name`` pod label. generateName gets a 5 character random suffix.
"""

from __future__ import annotations

import random
import re

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of k8s.io/apimachinery/pkg/util/rand


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(length))


def generate_name(prefix: str) -> str:
    """The real API server truncates the prefix so that prefix + 5 chars fits in 63 characters."""
    return prefix[: 63 - 5] + random_suffix()


def name_errors(name: str, rule: str) -> list[str]:
    """Error messages worded as the API server words them; empty when the name is valid."""
    errors = []
    if rule == "dns1035":
        if len(name) > 63:
            errors.append("must be no more than 63 characters")
        if not _DNS1035_LABEL.match(name):
            errors.append(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic"
                " character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for"
                " validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            )
    elif rule == "dns1123label":
        if len(name) > 63:
            errors.append("must be no more than 63 characters")
        if not _DNS1123_LABEL.match(name):
            errors.append(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start"
                " and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is"
                " '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
    else:
        if len(name) > 253:
            errors.append("must be no more than 253 characters")
        if not _DNS1123_SUBDOMAIN.match(name):
            errors.append(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and"
                " must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is"
                " '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
        if rule == "job" and len(name) > 63:
            errors.append("must be no more than 63 characters")
    return errors
