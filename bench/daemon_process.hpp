#pragma once
// What the benchmarks that run the real daemon share: a fresh migrated
// database, and `projectiond run` as a child process with a configuration file
// of its own, logging to a file.

#include "store/connection.hpp"
#include "store/migrations.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace projectiond::bench {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline std::string daemon_binary() {
    if (const char* path = std::getenv("PROJECTIOND_BIN")) {
        return path;
    }
    return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "../src/projectiond").lexically_normal();
}

inline std::filesystem::path work_directory() {
    static const std::filesystem::path dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/projectiond-bench-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        return std::filesystem::path(pattern);
    }();
    return dir;
}

inline store::Connection open(const std::string& dbname) {
    store::ConnectOptions options;
    options.conninfo = "dbname=" + dbname;
    options.application_name = "projectiond bench";
    return store::Connection::open(options);
}

// A fresh, migrated database named <name>_<pid>, dropped with this object.
class Database {
public:
    explicit Database(const std::string& name) : name_(fmt::format("{}_{}", name, ::getpid())) {
        open("postgres").exec("CREATE DATABASE " + name_);
        store::Connection conn = open(name_);
        store::migrate(conn, [](const store::Migration&) {});
    }
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    ~Database() {
        try {
            open("postgres").exec("DROP DATABASE " + name_ + " WITH (FORCE)");
        } catch (const std::exception& error) {
            fmt::print(stderr, "could not drop {}: {}\n", name_, error.what());
        }
    }
    const std::string& name() const { return name_; }
    store::Connection connect() const { return open(name_); }
    std::string scalar(const std::string& sql) const { return std::string(connect().exec(sql).text(0, 0)); }

private:
    std::string name_;
};

// `projectiond run` with a configuration file of its own (<name>.yaml),
// logging to <name>.log in the work directory.
class Daemon {
public:
    Daemon(const Database& db, const std::string& yaml, const std::string& name) : db_(db.name()) {
        config_ = work_directory() / (name + ".yaml");
        log_ = work_directory() / (name + ".log");
        write(yaml);
        const std::vector<std::string> argv{daemon_binary(),  "run",           "-c",           config_.string(),
                                            "--database-url", "dbname=" + db_, "--log-target", "stderr",
                                            "--log-level",    "info"};
        pid_ = ::fork();
        if (pid_ == 0) {
            const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(fd, STDERR_FILENO);
            ::dup2(fd, STDOUT_FILENO);
            std::vector<char*> args;
            for (const auto& arg : argv) {
                args.push_back(const_cast<char*>(arg.c_str()));
            }
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
    }
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;
    ~Daemon() {
        if (!reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    int pid() const { return pid_; }
    void write(const std::string& yaml) const { std::ofstream(config_) << yaml; }
    void signal(int number) const { ::kill(pid_, number); }
    // utime + stime so far, in seconds (before it is reaped).
    double cpu_seconds() const {
        std::ifstream stat(fmt::format("/proc/{}/stat", pid_));
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        std::istringstream fields(text.substr(text.rfind(')') + 2));
        std::vector<std::string> values((std::istream_iterator<std::string>(fields)),
                                        std::istream_iterator<std::string>());
        // Fields 14 and 15 of stat(5); the text after ')' starts at field 3.
        return static_cast<double>(std::stoll(values.at(11)) + std::stoll(values.at(12))) /
               static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
    // Stops it (SIGTERM: drains) and waits.
    void stop() {
        if (reaped_) {
            return;
        }
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
    }
    // `projectiond status NAME`, as an operator would run it.
    std::string status(const std::string& name) const {
        const std::string command = fmt::format("'{}' -c '{}' --database-url 'dbname={}' status {} 2>&1",
                                                daemon_binary(), config_.string(), db_, name);
        std::string out;
        if (FILE* pipe = ::popen(command.c_str(), "r")) {
            char buffer[4096];
            std::size_t got = 0;
            while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
                out.append(buffer, got);
            }
            ::pclose(pipe);
        }
        return out;
    }

private:
    std::string db_;
    std::filesystem::path config_;
    std::filesystem::path log_;
    pid_t pid_ = -1;
    bool reaped_ = false;
};

} // namespace projectiond::bench
