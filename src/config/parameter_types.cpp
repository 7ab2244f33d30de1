#include "config/parameter_types.hpp"

#include "config/named_parameters.hpp"

#include <charconv>

namespace projectiond::config {

namespace {
constexpr ParameterType bigint_type{"bigint", 20};
constexpr ParameterType integer_type{"integer", 23};
constexpr ParameterType text_type{"text", 25};
constexpr ParameterType uuid_type{"uuid", 2950};
constexpr ParameterType timestamptz_type{"timestamptz", 1184};
constexpr ParameterType jsonb_type{"jsonb", 3802};

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// How PostgreSQL's messages spell a type (format_type).
std::string_view spelled_in_messages(const ParameterType& type) {
    return type.oid == timestamptz_type.oid ? "timestamp with time zone" : type.name;
}

bool is_word_char(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// `word` occurs in `text` as a whole word.
bool mentions(std::string_view text, std::string_view word) {
    for (std::size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
        const bool starts = at == 0 || !is_word_char(text[at - 1]);
        const bool ends = at + word.size() == text.size() || !is_word_char(text[at + word.size()]);
        if (starts && ends) {
            return true;
        }
    }
    return false;
}
} // namespace

ParameterType parameter_type(std::string_view parameter) {
    const auto [base, path] = split_json_path(parameter);
    if (!path.empty()) {
        return text_type; // #>> gives text
    }
    if (base == "global_position" || base == "aggregate_version") {
        return bigint_type;
    }
    if (base == "event_version") {
        return integer_type;
    }
    if (base == "event_id") {
        return uuid_type;
    }
    if (base == "created_at") {
        return timestamptz_type;
    }
    if (base == "payload" || base == "metadata") {
        return jsonb_type;
    }
    return text_type;
}

std::vector<std::uint32_t> parameter_type_oids(const std::vector<std::string>& parameters) {
    std::vector<std::uint32_t> oids;
    oids.reserve(parameters.size());
    for (const auto& parameter : parameters) {
        oids.push_back(parameter_type(parameter).oid);
    }
    return oids;
}

std::string name_parameters_in_message(std::string_view message, const std::vector<std::string>& parameters) {
    std::string out;
    std::size_t pos = 0;
    while (pos < message.size()) {
        const std::size_t dollar = message.find('$', pos);
        if (dollar == std::string_view::npos) {
            break;
        }
        std::size_t end = dollar + 1;
        while (end < message.size() && is_digit(message[end])) {
            ++end;
        }
        std::size_t number = 0;
        const auto [ptr, error] = std::from_chars(message.data() + dollar + 1, message.data() + end, number);
        out.append(message.substr(pos, dollar - pos));
        if (end > dollar + 1 && error == std::errc() && number >= 1 && number <= parameters.size()) {
            out += ':';
            out += parameters[number - 1];
            out += " (";
            out.append(message.substr(dollar, end - dollar));
            out += ')';
        } else {
            out.append(message.substr(dollar, end - dollar));
        }
        pos = end;
    }
    out.append(message.substr(std::min(pos, message.size())));
    return out;
}

std::string parameters_of_types_in_message(std::string_view message, const std::vector<std::string>& parameters) {
    std::string out;
    std::string_view example_parameter;
    for (const auto& parameter : parameters) {
        const ParameterType type = parameter_type(parameter);
        if (!mentions(message, spelled_in_messages(type))) {
            continue;
        }
        out += out.empty() ? " (:" : ", :";
        out += parameter;
        out += " is bound as ";
        out += type.name;
        if (example_parameter.empty()) {
            example_parameter = parameter;
        }
    }
    if (out.empty()) {
        return out;
    }
    const std::string_view example_type = parameter_type(example_parameter).oid == text_type.oid ? "numeric" : "text";
    out += "; cast it where another type is meant, e.g. :";
    out += example_parameter;
    out += "::";
    out += example_type;
    out += ')';
    return out;
}

} // namespace projectiond::config
