#pragma once
// A very small terminal: enough of VT100 to replay what the progress display
// and the log write (text, CR, LF, cursor up, erase below, erase line, colours)
// and tell what a person would see, and what they saw along the way.

#include <string>
#include <string_view>
#include <vector>

namespace projectiond::testing {

class Screen {
public:
    void feed(std::string_view bytes);

    // The rows now on the screen, trailing empty ones dropped.
    std::vector<std::string> rows() const;
    // Every row's content at the moment it was erased: what was drawn and then taken away.
    const std::vector<std::string>& erased() const noexcept { return erased_; }
    // Escape sequences this terminal does not know (a test should expect none).
    const std::vector<std::string>& unknown() const noexcept { return unknown_; }

private:
    void put(char c);
    void erase_row_from(std::size_t row, std::size_t column);

    std::vector<std::string> rows_{std::string()};
    std::size_t row_ = 0;
    std::size_t column_ = 0;
    std::string escape_; // a sequence being read, from ESC
    std::vector<std::string> erased_;
    std::vector<std::string> unknown_;
};

} // namespace projectiond::testing
