#include "throwaway_cluster.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace projectiond::testing {

namespace {

std::string required_env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        throw std::runtime_error(fmt::format("{} is not set: run the test under scripts/with-postgres", name));
    }
    return value;
}

// initdb and postgres refuse to run as root: as root, the server runs as the
// OS user that owns the harness's cluster (scripts/with-postgres).
std::vector<std::string> as_server_user(std::vector<std::string> argv) {
    if (::getuid() != 0) {
        return argv;
    }
    std::string runuser;
    for (const char* candidate : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
        if (::access(candidate, X_OK) == 0) {
            runuser = candidate;
            break;
        }
    }
    if (runuser.empty()) {
        throw std::runtime_error("running as root, but runuser (util-linux) is missing");
    }
    std::vector<std::string> wrapped{runuser, "-u", required_env("PROJECTIOND_TEST_PGUSER_OS"), "--"};
    wrapped.insert(wrapped.end(), argv.begin(), argv.end());
    return wrapped;
}

void run_or_throw(const std::vector<std::string>& argv, const std::string& what) {
    const CommandResult result = run_command(argv, {}, std::chrono::seconds(120));
    if (result.exit_code != 0) {
        throw std::runtime_error(
            fmt::format("{} failed (exit {}): {}{}", what, result.exit_code, result.out, result.err));
    }
}

std::string read_text(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

} // namespace

store::Connection DatabaseAt::connect() const {
    store::ConnectOptions options;
    options.conninfo = conninfo_;
    options.application_name = "projectiond tests";
    return store::Connection::open(options);
}

std::string DatabaseAt::scalar(const std::string& sql) const {
    store::Connection conn = connect();
    const store::Result result = conn.exec(sql);
    if (result.rows() == 0 || result.is_null(0, 0)) {
        return {};
    }
    return std::string(result.text(0, 0));
}

long long DatabaseAt::number(const std::string& sql) const {
    const std::string text = scalar(sql);
    return text.empty() ? 0 : std::stoll(text);
}

DatabaseAt harness_database(const std::string& name) {
    return DatabaseAt(fmt::format("host={} port={} user={} dbname={}", required_env("PGHOST"), required_env("PGPORT"),
                                  required_env("PGUSER"), name));
}

std::string postgres_program(const std::string& name) {
    return (std::filesystem::path(required_env("PROJECTIOND_TEST_PGCTL")).parent_path() / name).string();
}

CommandResult run_postgres_program(const std::string& name, const std::vector<std::string>& args,
                                   const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout) {
    std::vector<std::string> argv{postgres_program(name)};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, env, timeout);
}

ThrowawayCluster::ThrowawayCluster(const std::vector<std::string>& settings) {
    // Inside the harness's own directory when there is one: should this
    // process die without its destructors, scripts/with-postgres still removes
    // the files, and the orphaned server shuts itself down once it finds its
    // lock file gone.
    static std::atomic<int> clusters{0};
    const char* harness = std::getenv("PGHOST");
    const std::string base = harness != nullptr && harness[0] == '/' && std::filesystem::is_directory(harness)
                                 ? std::string(harness)
                                 : std::string("/tmp");
    std::string pattern = base + "/cluster.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed in " + base);
    }
    directory_ = pattern;
    data_ = directory_ + "/data";
    port_ = 54340 + clusters++;
    ::chmod(directory_.c_str(), 0755);
    if (::getuid() == 0) {
        const std::string user = required_env("PROJECTIOND_TEST_PGUSER_OS");
        const passwd* owner = ::getpwnam(user.c_str());
        if (owner == nullptr || ::chown(directory_.c_str(), owner->pw_uid, owner->pw_gid) != 0) {
            throw std::runtime_error("cannot give " + directory_ + " to " + user);
        }
    }
    try {
        run_or_throw(as_server_user({postgres_program("initdb"), "-D", data_, "-U", "postgres", "-A", "trust", "-E",
                                     "UTF8", "--locale=C.UTF-8", "--no-sync"}),
                     "initdb");
        {
            std::ofstream conf(data_ + "/postgresql.conf", std::ios::app);
            conf << fmt::format("listen_addresses = ''\nunix_socket_directories = '{}'\nport = {}\n", directory_, port_)
                 << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
                    "log_min_messages = warning\nmax_prepared_transactions = 10\n";
            for (const auto& line : settings) {
                conf << line << '\n';
            }
        }
        run_or_throw(as_server_user({postgres_program("pg_ctl"), "-D", data_, "-l", directory_ + "/server.log", "-w",
                                     "-t", "60", "start"}),
                     "pg_ctl start");
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
        throw;
    }
}

ThrowawayCluster::~ThrowawayCluster() {
    try {
        if (std::filesystem::exists(data_ + "/postmaster.pid")) {
            run_command(as_server_user({postgres_program("pg_ctl"), "-D", data_, "-m", "immediate", "-w", "stop"}), {},
                        std::chrono::seconds(60));
        }
    } catch (...) {
        // Removing the directory below makes an orphaned server stop by itself.
    }
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
}

std::string ThrowawayCluster::conninfo(const std::string& dbname) const {
    return fmt::format("host={} port={} user=postgres dbname={}", directory_, port_, dbname);
}

DatabaseAt ThrowawayCluster::create_database(const std::string& name) const {
    DatabaseAt admin(conninfo("postgres"));
    admin.connect().exec("CREATE DATABASE " + name);
    return DatabaseAt(conninfo(name));
}

std::string ThrowawayCluster::server_log() const {
    return read_text(directory_ + "/server.log");
}

} // namespace projectiond::testing
