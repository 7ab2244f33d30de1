#pragma once
// Owns one libpq result; the only place that calls PQclear.

#include <libpq-fe.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace projectiond::store {

class Result {
public:
    Result() = default;
    explicit Result(PGresult* result) noexcept : result_(result) {}
    Result(Result&& other) noexcept : result_(other.release()) {}
    Result& operator=(Result&& other) noexcept;
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    ~Result();

    explicit operator bool() const noexcept { return result_ != nullptr; }
    PGresult* get() const noexcept { return result_; }
    PGresult* release() noexcept;

    ExecStatusType status() const noexcept;
    bool ok() const noexcept;
    int rows() const noexcept;

    bool is_null(int row, int column) const noexcept;
    // The value as text; empty for NULL. Valid while this Result lives.
    std::string_view text(int row, int column) const noexcept;
    std::optional<std::string> optional_text(int row, int column) const;
    std::int64_t int64(int row, int column) const;
    bool boolean(int row, int column) const;

    std::string sqlstate() const;
    std::string error_message() const;

private:
    PGresult* result_ = nullptr;
};

} // namespace projectiond::store
