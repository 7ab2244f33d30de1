#include "child_process.hpp"
#include "handler_fixtures.hpp"
#include "handlers/plugin_handler.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

using projectiond::handlers::PluginHandler;
using projectiond::handlers::PluginLibrary;
using projectiond::testing::build_path;
using projectiond::testing::run_command;
using projectiond::testing::SampleEvents;
namespace fs = std::filesystem;

namespace {

// A directory removed with everything in it when the test ends.
class TemporaryDirectory {
public:
    TemporaryDirectory() {
        std::string pattern = (fs::temp_directory_path() / "projectiond-install-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    TemporaryDirectory(const TemporaryDirectory&) = delete;
    TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
    ~TemporaryDirectory() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    const fs::path& path() const noexcept { return path_; }

private:
    fs::path path_;
};

fs::path under(const fs::path& root, const std::string& absolute) {
    return root / fs::path(absolute).relative_path();
}

} // namespace

TEST_SUITE("plugin development files") {
    TEST_CASE("the counter plugin builds out of tree with pkg-config after meson install --destdir") {
        TemporaryDirectory destdir;
        const auto install =
            run_command({build_path("PROJECTIOND_MESON"), "install", "-C", build_path("PROJECTIOND_BUILD_ROOT"),
                         "--no-rebuild", "--destdir", destdir.path().string()},
                        {}, std::chrono::seconds(120));
        REQUIRE_MESSAGE(install.exit_code == 0, install.out << install.err);

        const std::string prefix = build_path("PROJECTIOND_PREFIX");
        const fs::path include = under(destdir.path(), prefix) / build_path("PROJECTIOND_INCLUDEDIR") / "projectiond";
        const fs::path pkgconfig = under(destdir.path(), prefix) / build_path("PROJECTIOND_LIBDIR") / "pkgconfig";
        CHECK(fs::exists(include / "handler.h"));
        CHECK(fs::exists(include / "handler.hpp"));
        REQUIRE(fs::exists(pkgconfig / "projectiond.pc"));

        // Only the headers: a plugin links against nothing of ours.
        const std::map<std::string, std::string> env = {{"PKG_CONFIG_PATH", pkgconfig.string()},
                                                        {"PKG_CONFIG_SYSROOT_DIR", destdir.path().string()}};
        const auto flags =
            run_command({build_path("PROJECTIOND_PKG_CONFIG"), "--cflags", "--libs", "projectiond"}, env);
        REQUIRE_MESSAGE(flags.exit_code == 0, flags.err);
        CHECK(flags.out.find("-I" + (under(destdir.path(), prefix) / build_path("PROJECTIOND_INCLUDEDIR")).string()) !=
              std::string::npos);
        std::istringstream words(flags.out);
        for (std::string word; words >> word;) {
            CHECK_MESSAGE(word.rfind("-l", 0) != 0, word);
            CHECK_MESSAGE(word.rfind("-L", 0) != 0, word);
        }

        // The example, copied away from the source tree, built with its Makefile.
        const fs::path work = destdir.path() / "work";
        fs::create_directory(work);
        const fs::path example = fs::path(build_path("PROJECTIOND_SOURCE_ROOT")) / "examples" / "counter-plugin";
        fs::copy_file(example / "counter.cpp", work / "counter.cpp");
        fs::copy_file(example / "Makefile", work / "Makefile");
        const auto make =
            run_command({build_path("PROJECTIOND_MAKE"), "-C", work.string()}, env, std::chrono::seconds(120));
        REQUIRE_MESSAGE(make.exit_code == 0, make.out << make.err);
        REQUIRE(fs::exists(work / "counter.so"));

        PluginHandler handler(PluginLibrary::load((work / "counter.so").string()), "out_of_tree", 0);
        SampleEvents events(2);
        const auto replies = handler.handle(events.all());
        REQUIRE(replies.size() == 2);
        REQUIRE_FALSE(replies[1].failed());
        CHECK(replies[1].statements.at(0).params == std::vector<std::optional<std::string>>{"out_of_tree"});
    }
}
