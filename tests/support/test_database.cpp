#include "test_database.hpp"

#include "store/migrations.hpp"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace projectiond::testing {

namespace {
store::Connection connect_to(const std::string& dbname) {
    store::ConnectOptions options;
    options.conninfo = "dbname=" + dbname;
    options.application_name = "projectiond tests";
    return store::Connection::open(options);
}

std::string fresh_name() {
    static std::atomic<int> counter{0};
    std::random_device random;
    return fmt::format("t_{}_{}_{}", ::getpid(), counter++, random() % 100000);
}

void run_pg_ctl(const std::string& action, const std::string& mode = "") {
    const char* pgctl = std::getenv("PROJECTIOND_TEST_PGCTL");
    const char* pgdata = std::getenv("PROJECTIOND_TEST_PGDATA");
    const char* user = std::getenv("PROJECTIOND_TEST_PGUSER_OS");
    const char* log = std::getenv("PROJECTIOND_TEST_PGLOG");
    if (pgctl == nullptr || pgdata == nullptr || user == nullptr || log == nullptr) {
        throw std::runtime_error("not running under scripts/with-postgres");
    }
    const bool as_root = ::getuid() == 0;
    const std::string command = fmt::format("{}'{}' -D '{}' -l '{}' -w -t 60 {} {} >/dev/null",
                                            as_root ? fmt::format("runuser -u {} -- ", user) : "", pgctl, pgdata, log,
                                            mode.empty() ? "" : "-m " + mode, action);
    if (std::system(command.c_str()) != 0) {
        throw std::runtime_error("pg_ctl " + action + " failed");
    }
}
} // namespace

bool cluster_available() {
    return std::getenv("PROJECTIOND_TEST_PGDATA") != nullptr;
}

void stop_cluster(bool immediate) {
    run_pg_ctl("stop", immediate ? "immediate" : "fast");
}
void start_cluster() {
    run_pg_ctl("start");
}
void ensure_cluster_running() {
    const char* pgctl = std::getenv("PROJECTIOND_TEST_PGCTL");
    const char* pgdata = std::getenv("PROJECTIOND_TEST_PGDATA");
    if (pgctl == nullptr || pgdata == nullptr) {
        return;
    }
    // pg_ctl refuses to run as root, `status` included: as root, ask as the
    // cluster's owner, as run_pg_ctl does (else the cluster always looks down,
    // and a start of the running server fails, saying so on stderr).
    const char* user = std::getenv("PROJECTIOND_TEST_PGUSER_OS");
    const std::string as_owner =
        ::getuid() == 0 && user != nullptr ? fmt::format("runuser -u {} -- ", user) : std::string();
    const std::string status = fmt::format("{}'{}' -D '{}' status >/dev/null 2>&1", as_owner, pgctl, pgdata);
    if (std::system(status.c_str()) != 0) {
        start_cluster();
    }
}

ClusterBack::~ClusterBack() {
    try {
        ensure_cluster_running();
    } catch (...) {
        // The next test reports the outage itself.
    }
}

void reload_cluster() {
    run_pg_ctl("reload");
}

std::string cluster_data_directory() {
    const char* pgdata = std::getenv("PROJECTIOND_TEST_PGDATA");
    if (pgdata == nullptr) {
        throw std::runtime_error("not running under scripts/with-postgres");
    }
    return pgdata;
}

void require_password_for(const std::string& role) {
    const std::string hba = cluster_data_directory() + "/pg_hba.conf";
    std::ifstream in(hba);
    std::stringstream current;
    current << in.rdbuf();
    if (current.str().find(role) == std::string::npos) {
        std::ofstream out(hba, std::ios::trunc);
        out << fmt::format("local all {} scram-sha-256\n", role) << current.str();
        out.close();
        reload_cluster();
    }
}

TestDatabase::TestDatabase(bool migrated) : name_(fresh_name()) {
    store::Connection admin = connect_to("postgres");
    admin.exec(fmt::format("CREATE DATABASE {}", name_));
    if (migrated) {
        store::Connection conn = connect();
        store::migrate(conn, [](const store::Migration&) {});
    }
}

TestDatabase::~TestDatabase() {
    try {
        store::Connection admin = connect_to("postgres");
        admin.exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_));
    } catch (...) {
        // The cluster is removed after the run anyway.
    }
}

store::Connection TestDatabase::connect() const {
    return connect_to(name_);
}

std::string TestDatabase::scalar(const std::string& sql) const {
    store::Connection conn = connect();
    const store::Result result = conn.exec(sql);
    if (result.rows() == 0 || result.is_null(0, 0)) {
        return {};
    }
    return std::string(result.text(0, 0));
}

long long TestDatabase::number(const std::string& sql) const {
    const std::string text = scalar(sql);
    return text.empty() ? 0 : std::stoll(text);
}

} // namespace projectiond::testing
