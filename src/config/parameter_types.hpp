#pragma once
// The PostgreSQL type each named parameter is bound with. Declaring them lets
// PostgreSQL check a handler against the real types (:aggregate_version used
// bare and in `= 1` is one bigint, not "inconsistent types deduced for
// parameter $2"), and lets messages about `$N` name the parameter instead.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace projectiond::config {

struct ParameterType {
    std::string_view name; // as PostgreSQL spells it: "bigint", "jsonb", ...
    std::uint32_t oid;     // its type OID, for PQprepare
    bool operator==(const ParameterType&) const = default;
};

// The type of a parameter as a handler names it ("aggregate_version",
// "payload.a.b"): bigint for global_position and aggregate_version, integer
// for event_version, uuid for event_id, timestamptz for created_at, jsonb for
// payload and metadata, text for JSON paths and every other field.
ParameterType parameter_type(std::string_view parameter);

// The type OIDs of a statement's parameters, in $1..$n order.
std::vector<std::uint32_t> parameter_type_oids(const std::vector<std::string>& parameters);

// Rewrites a PostgreSQL message so that each `$N` names the handler's
// parameter: "inconsistent types deduced for parameter $2" becomes
// "inconsistent types deduced for parameter :aggregate_version ($2)".
// `parameters[i]` is `$(i+1)`; other numbers are left alone.
std::string name_parameters_in_message(std::string_view message, const std::vector<std::string>& parameters);

// For a type error ("operator does not exist: uuid = text"), which of the
// statement's parameters have a type the message names, as
// " (:event_id is bound as uuid; cast it where another type is meant, e.g.
// :event_id::text)"; empty when none does.
std::string parameters_of_types_in_message(std::string_view message, const std::vector<std::string>& parameters);

} // namespace projectiond::config
