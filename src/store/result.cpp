#include "store/result.hpp"

#include <charconv>
#include <stdexcept>

#include <fmt/format.h>

namespace projectiond::store {

Result& Result::operator=(Result&& other) noexcept {
    if (this != &other) {
        if (result_ != nullptr) {
            PQclear(result_);
        }
        result_ = other.release();
    }
    return *this;
}

Result::~Result() {
    if (result_ != nullptr) {
        PQclear(result_);
    }
}

PGresult* Result::release() noexcept {
    PGresult* result = result_;
    result_ = nullptr;
    return result;
}

ExecStatusType Result::status() const noexcept {
    return result_ == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result_);
}

bool Result::ok() const noexcept {
    const ExecStatusType s = status();
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_SINGLE_TUPLE;
}

int Result::rows() const noexcept {
    return result_ == nullptr ? 0 : PQntuples(result_);
}

bool Result::is_null(int row, int column) const noexcept {
    return PQgetisnull(result_, row, column) != 0;
}

std::string_view Result::text(int row, int column) const noexcept {
    return {PQgetvalue(result_, row, column), static_cast<std::size_t>(PQgetlength(result_, row, column))};
}

std::optional<std::string> Result::optional_text(int row, int column) const {
    if (is_null(row, column)) {
        return std::nullopt;
    }
    return std::string(text(row, column));
}

namespace {
std::int64_t parse_int64(std::string_view text, std::string_view what) {
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
        throw std::runtime_error(fmt::format("expected an integer for {}, got '{}'", what, text));
    }
    return value;
}
} // namespace

std::int64_t Result::int64(int row, int column) const {
    if (is_null(row, column)) {
        throw std::runtime_error(
            fmt::format("column '{}' is NULL where a number was expected", PQfname(result_, column)));
    }
    return parse_int64(text(row, column), PQfname(result_, column));
}

bool Result::boolean(int row, int column) const {
    return text(row, column) == "t";
}

std::string Result::sqlstate() const {
    const char* state = result_ == nullptr ? nullptr : PQresultErrorField(result_, PG_DIAG_SQLSTATE);
    return state == nullptr ? std::string() : std::string(state);
}

std::string Result::error_message() const {
    if (result_ == nullptr) {
        return {};
    }
    const char* primary = PQresultErrorField(result_, PG_DIAG_MESSAGE_PRIMARY);
    std::string message = primary != nullptr ? primary : PQresultErrorMessage(result_);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    if (const char* detail = PQresultErrorField(result_, PG_DIAG_MESSAGE_DETAIL)) {
        message += fmt::format(" ({})", detail);
    }
    return message;
}

} // namespace projectiond::store
