// The `format` of CustomResourceDefinition schemas, as kube-apiserver
// checks it: apiextensions keeps a format only where its
// StripUnsupportedFormatsPostProcess does (string formats of its list,
// int32/int64 on integers, float/double on numbers; anything else is
// ignored), and kube-openapi's strfmt registry decides whether a string is
// valid (bsonobjectid, uri, email, hostname, ipv4, ipv6, cidr, mac,
// uuid/uuid3/uuid4/uuid5, isbn/isbn10/isbn13, creditcard, ssn, hexcolor,
// rgbcolor, byte, password, date, duration, datetime). Names are compared
// with dashes removed, as go-openapi normalizes them ("date-time").
//
// Thread-safety: pure functions, safe from any thread.
#pragma once

#include <string>

namespace kin::apiserver {

// The format a schema node of `type` ("" when it has none) with `format`
// is validated with: `format` itself, or "" when kube-apiserver ignores it.
std::string EffectiveSchemaFormat(const std::string& type, const std::string& format);

// Whether the string-format registry knows `format` (dashes ignored).
bool IsKnownStringFormat(const std::string& format);

// Whether `value` is a valid string of the known `format`.
bool IsValidStringFormat(const std::string& format, const std::string& value);

}  // namespace kin::apiserver
