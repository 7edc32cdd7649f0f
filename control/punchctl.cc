// punchctl: the operator's CLI over punchlined's management socket (design.md §4).
//
//   punchctl [--socket PATH] [--json] [--watch N [--count K]] [--timeout S] COMMAND [OPTIONS]
//
// Each subcommand is a command path on the socket ("punchctl stats" is /stats); its options
// are the command's arguments (--window 10 is {"window": 10}). People get tables; --json
// prints the engine's result as it came, one JSON object per line (per round with --watch).
// Exit codes, for scripts (docs/operations.md):
//   0  success
//   1  the engine could not carry the command out (not_available, refused, internal_error)
//   2  usage: punchctl's own options, or the engine refused the request as written
//      (unknown command or argument, bad or missing argument)
//   3  cannot reach the engine: no socket, nobody listening, too many clients, the
//      connection lost, or no reply within --timeout
//   4  permission denied: the socket file's mode, or the engine's credential check
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/protocol.h"

namespace {

using nlohmann::json;

enum Exit : int { ok = 0, engine_error = 1, usage = 2, unreachable = 3, denied = 4 };

constexpr std::string_view default_socket = "/run/punchline/punchlined.sock";

// A failure that ends punchctl: what to print and the exit code.
struct Failure {
    Exit code;
    std::string message;
    std::string hint;
};

std::string error_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

class Connection {
public:
    Connection(const std::string& path, int timeout_s)
        : path_(path), timeout_ms_(timeout_s * 1000) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw Failure{unreachable, "socket(): " + error_text(errno), {}};
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        if (path.size() >= sizeof address.sun_path)
            throw Failure{usage, "--socket " + path + ": longer than 107 bytes", {}};
        std::memcpy(address.sun_path, path.data(), path.size());
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
            const int error = errno;
            if (error == EACCES || error == EPERM)
                throw Failure{denied, "cannot connect to " + path + ": " + error_text(error),
                              "run as root, as the engine's user, or as a member of the group "
                              "its [control] group names"};
            throw Failure{unreachable, "cannot connect to " + path + ": " + error_text(error),
                          "is punchlined running? Give its [control] socket with --socket PATH "
                          "(or PUNCHCTL_SOCKET)"};
        }
    }
    ~Connection() { ::close(fd_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Sends one request and returns its reply.
    json call(const std::string& path, const json& args) {
        const json request = {{"id", ++id_}, {"command", path}, {"args", args}};
        const std::string line = request.dump() + "\n";
        std::size_t sent = 0;
        while (sent < line.size()) {
            const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            // The engine may have refused us and closed already: its one line still waits.
            if (n < 0) break;
            sent += static_cast<std::size_t>(n);
        }
        for (;;) {
            const json reply = read_line();
            // A reply to this request, or the engine's refusal (id null) of the connection.
            if (reply.is_object() &&
                (reply.value("id", json()) == json(id_) || reply.value("id", json()).is_null()))
                return reply;
        }
    }

private:
    json read_line() {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
        for (;;) {
            const std::size_t end = buffer_.find('\n');
            if (end != std::string::npos) {
                std::string line = buffer_.substr(0, end);
                buffer_.erase(0, end + 1);
                json reply = json::parse(line, nullptr, false);
                if (reply.is_discarded())
                    throw Failure{
                        unreachable, "the engine's reply is not JSON: " + line.substr(0, 200), {}};
                return reply;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                throw Failure{unreachable,
                              "no reply from " + path_ + " within " +
                                  std::to_string(timeout_ms_ / 1000) + " s",
                              "raise --timeout, or check that punchlined is not stuck"};
            pollfd p{fd_, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) continue;
            char chunk[65536];
            const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                throw Failure{unreachable,
                              "the engine closed the connection" +
                                  (n < 0 ? ": " + error_text(errno) : std::string()),
                              {}};
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    std::string path_;
    int timeout_ms_;
    int fd_ = -1;
    std::int64_t id_ = 0;
    std::string buffer_;
};

Exit exit_for(std::string_view code) {
    control::ErrorCode error;
    if (!control::error_code_from_string(code, error)) return engine_error;
    switch (error) {
        case control::ErrorCode::malformed_request:
        case control::ErrorCode::line_too_long:
        case control::ErrorCode::unknown_command:
        case control::ErrorCode::unknown_argument:
        case control::ErrorCode::missing_argument:
        case control::ErrorCode::bad_argument:
            return usage;
        case control::ErrorCode::permission_denied:
            return denied;
        case control::ErrorCode::too_many_clients:
            return unreachable;
        case control::ErrorCode::not_available:
        case control::ErrorCode::refused:
        case control::ErrorCode::internal_error:
            return engine_error;
    }
    return engine_error;
}

// ---------------------------------------------------------------- tables for people

// Columns padded to their widest cell; numbers right-aligned.
class Table {
public:
    explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    void print(std::FILE* out = stdout) const {
        std::vector<std::size_t> widths;
        for (const auto& row : rows_)
            for (std::size_t i = 0; i < row.size(); ++i) {
                if (widths.size() <= i) widths.push_back(0);
                widths[i] = std::max(widths[i], row[i].size());
            }
        for (const auto& row : rows_) {
            std::string line;
            for (std::size_t i = 0; i < row.size(); ++i) {
                const bool number = !row[i].empty() &&
                                    (std::isdigit(static_cast<unsigned char>(row[i][0])) != 0) &&
                                    &row != &rows_[0];
                const std::string pad(widths[i] - row[i].size(), ' ');
                line += number ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : "");
                if (i + 1 < row.size()) line += "  ";
            }
            std::fprintf(out, "%s\n", line.c_str());
        }
    }

private:
    std::vector<std::vector<std::string>> rows_;
};

// 1234567 → "1.23M"; below 1000 as an integer (or one decimal for fractions).
std::string si(double value) {
    static const char* const units[] = {"", "k", "M", "G", "T", "P"};
    int unit = 0;
    while (std::fabs(value) >= 1000 && unit < 5) {
        value /= 1000;
        ++unit;
    }
    char text[32];
    if (unit == 0 && value == std::floor(value))
        std::snprintf(text, sizeof text, "%.0f", value);
    else
        std::snprintf(text, sizeof text,
                      value < 10    ? "%.2f%s"
                      : value < 100 ? "%.1f%s"
                                    : "%.0f%s",
                      value, units[unit]);
    return text;
}

std::string count(const json& value) { return std::to_string(value.get<std::uint64_t>()); }

std::string duration(double seconds) {
    auto s = static_cast<std::uint64_t>(seconds);
    char text[64];
    if (s >= 86400)
        std::snprintf(text, sizeof text, "%llud%02lluh%02llum",
                      static_cast<unsigned long long>(s / 86400),
                      static_cast<unsigned long long>(s / 3600 % 24),
                      static_cast<unsigned long long>(s / 60 % 60));
    else if (s >= 3600)
        std::snprintf(
            text, sizeof text, "%lluh%02llum%02llus", static_cast<unsigned long long>(s / 3600),
            static_cast<unsigned long long>(s / 60 % 60), static_cast<unsigned long long>(s % 60));
    else if (s >= 60)
        std::snprintf(text, sizeof text, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                      static_cast<unsigned long long>(s % 60));
    else
        std::snprintf(text, sizeof text, "%.1fs", seconds);
    return text;
}

std::string joined(const json& array, std::string_view separator = " ") {
    std::string out;
    for (const auto& item : array) {
        if (!out.empty()) out += separator;
        out += item.is_string() ? item.get<std::string>() : item.dump();
    }
    return out.empty() ? "-" : out;
}

void print_status(const json& r) {
    std::printf("punchlined %s, pid %s, up %s\n", r["version"].get<std::string>().c_str(),
                r["pid"].dump().c_str(), duration(r["uptime_s"].get<double>()).c_str());
    std::printf("cores: main lcore %s, worker lcores %s\n", r["cores"]["main"].dump().c_str(),
                joined(r["cores"]["workers"], ", ").c_str());
    std::string roles;
    if (r["stun"]["enabled"].get<bool>())
        roles +=
            "stun (ports " + r["stun"]["port"].dump() +
            (r["stun"]["alternate_port"].get<int>() != 0 ? ", " + r["stun"]["alternate_port"].dump()
                                                         : std::string()) +
            ")";
    if (r["relay"]["enabled"].get<bool>())
        roles += std::string(roles.empty() ? "" : ", ") + "relay (realm " +
                 r["relay"]["realm"].get<std::string>() + ", relay ports " +
                 r["relay"]["ports"].get<std::string>() + ")";
    std::printf("roles: %s\n", roles.empty() ? "none" : roles.c_str());
    Table ports({"PORT", "ID", "MAC", "LINK", "SPEED", "QUEUES", "STEERING", "ADDRESSES"});
    for (const auto& p : r["ports"]) {
        std::string addresses = joined(p["ipv4"]);
        if (!p["ipv6"].empty()) addresses += " " + joined(p["ipv6"]);
        if (p.contains("link"))
            ports.add({p["device"].get<std::string>(), p["id"].dump(), p["mac"].get<std::string>(),
                       p["link"]["up"].get<bool>() ? "up" : "down",
                       p["link"]["speed_mbps"].get<std::uint64_t>() == 0
                           ? "-"
                           : p["link"]["speed_mbps"].dump() + "Mb/s " +
                                 p["link"]["duplex"].get<std::string>(),
                       p["queues"].dump(), p["steering"].get<std::string>(), addresses});
        else
            ports.add({p["device"].get<std::string>(), "-", "-", "-", "-", "-", "-", addresses});
    }
    ports.print();
    if (r["relay"].contains("drain") && r["relay"]["drain"]["draining"].get<bool>())
        std::printf("relay: DRAINING, %s allocation(s) left (punchctl drain)\n",
                    r["relay"]["drain"]["allocations"].dump().c_str());
    if (r.contains("control"))
        std::printf("control: %s, %s client(s)\n",
                    r["control"]["socket"].get<std::string>().c_str(),
                    r["control"]["clients"].dump().c_str());
}

void print_stats(const json& r) {
    std::printf("rates over the last %.1f s\n", r["window_s"].get<double>());
    Table table({"CORE", "RX PPS", "RX BIT/S", "TX PPS", "TX BIT/S", "HANDOFF/S", "DROP/S",
                 "RX PKTS", "TX PKTS", "HANDED OFF", "DROPPED", "ALLOCATIONS"});
    auto row = [&](const std::string& name, const json& c) {
        std::string allocations = "-";
        if (!c["allocations"].is_null())
            allocations =
                count(c["allocations"]["count"]) + "/" + count(c["allocations"]["capacity"]);
        table.add({name, si(c["rx"]["pps"].get<double>()), si(c["rx"]["bps"].get<double>()),
                   si(c["tx"]["pps"].get<double>()), si(c["tx"]["bps"].get<double>()),
                   si(c["handed_off"]["per_s"].get<double>()),
                   si(c["dropped"]["per_s"].get<double>()), count(c["rx"]["packets"]),
                   count(c["tx"]["packets"]), count(c["handed_off"]["packets"]),
                   count(c["dropped"]["packets"]), allocations});
    };
    for (const auto& c : r["cores"]) row("lcore" + c["lcore"].dump(), c);
    row("total", r["total"]);
    table.print();
    if (!r["total"]["drops"].empty()) {
        std::printf("\n");
        Table drops({"DROP REASON", "PACKETS", "PER S"});
        for (const auto& d : r["total"]["drops"])
            drops.add(
                {d["reason"].get<std::string>(), count(d["count"]), si(d["per_s"].get<double>())});
        drops.print();
    }
}

void print_allocations(const json& r, const std::vector<std::string>& filters) {
    Table table({"LCORE", "SLOT", "USER", "CLIENT", "RELAYED", "EXPIRES", "PERMS", "CHANS",
                 "TO PEER", "TO CLIENT"});
    for (const auto& a : r["allocations"])
        // A name the engine cannot tell (a TURN REST username: the table keeps its keyed
        // hash) shows as "#" and the hash; --user NAME finds it.
        table.add({a["lcore"].dump(), a["slot"].dump(),
                   a["user"].is_string() ? a["user"].get<std::string>()
                                         : "#" + a["user_hash"].get<std::string>(),
                   a["client"].get<std::string>(), joined(a["relayed"]),
                   duration(a["expires_in_s"].get<double>()), a["permissions"].dump(),
                   a["channels"].dump(),
                   count(a["to_peer"]["packets"]) + " pkts " +
                       si(a["to_peer"]["bytes"].get<double>()) + "B",
                   count(a["to_client"]["packets"]) + " pkts " +
                       si(a["to_client"]["bytes"].get<double>()) + "B"});
    if (!r["allocations"].empty()) table.print();
    std::printf("%zu shown, %s matched", r["allocations"].size(), r["matched"].dump().c_str());
    if (r["skipped"].get<std::uint64_t>() != 0)
        std::printf(", %s skipped (changing while read)", r["skipped"].dump().c_str());
    std::printf("\n");
    if (!r["next"].is_null()) {
        std::string more = "punchctl allocations";
        for (const std::string& f : filters) more += " " + f;
        std::printf("more: %s --after %s\n", more.c_str(), r["next"].get<std::string>().c_str());
    }
}

// ---------------------------------------------------------------- live changes (relay)

void print_users(const json& r) {
    Table table({"USER", "ALLOCATIONS"});
    for (const auto& u : r["users"])
        table.add({u["name"].get<std::string>(), count(u["allocations"])});
    if (!r["users"].empty()) table.print();
    std::printf("%zu user(s); %s REST secret(s) (punchctl secrets)\n", r["users"].size(),
                r["rest_secrets"].dump().c_str());
}

void print_secrets(const json& r) {
    Table table({"ID", "AGE", "ORIGIN"});
    for (const auto& s : r["secrets"])
        table.add({s["id"].dump(), duration(s["age_s"].get<double>()),
                   s["origin"].get<std::string>()});
    if (!r["secrets"].empty()) table.print();
    std::printf("%zu secret(s) accepted\n", r["secrets"].size());
}

void print_peer_policy(const json& r) {
    std::printf("order: %s\n", r["order"].get<std::string>().c_str());
    std::printf("own addresses (always refused): %s\n", joined(r["own_addresses"]).c_str());
    std::printf("deny:  %s\n", joined(r["deny"]).c_str());
    std::printf("allow: %s\n", joined(r["allow"]).c_str());
    Table table({"DEFAULT REFUSED", "REASON"});
    for (const auto& d : r["defaults"])
        table.add({d["range"].get<std::string>(), d["reason"].get<std::string>()});
    table.print();
}

void print_drain(const json& r) {
    if (r["draining"].get<bool>())
        std::printf("draining%s: new allocations get %s\n",
                    r["changed"].get<bool>() ? " (from now)" : " (already)",
                    r["alternate_server"].is_null()
                        ? "508 (no relay.alternate_server)"
                        : ("300 Try Alternate to " + r["alternate_server"].get<std::string>())
                              .c_str());
    else
        std::printf("not draining%s: new allocations are accepted\n",
                    r["changed"].get<bool>() ? " any more" : "");
    std::string cores;
    for (const auto& c : r["cores"])
        cores += (cores.empty() ? "" : ", ") + std::string("lcore") + c["lcore"].dump() + " " +
                 c["allocations"].dump();
    std::printf("%s allocation(s) left (%s)\n", r["allocations"].dump().c_str(), cores.c_str());
}

void print_reload(const json& r) {
    if (r["changed"].empty()) {
        std::printf("reloaded %s: nothing changed\n", r["file"].get<std::string>().c_str());
        return;
    }
    std::printf("reloaded %s: changed %s\n", r["file"].get<std::string>().c_str(),
                joined(r["changed"], ", ").c_str());
    if (r.contains("users")) {
        const json& u = r["users"];
        if (!u["added"].empty())
            std::printf("  users added: %s\n", joined(u["added"], ", ").c_str());
        if (!u["removed"].empty())
            std::printf("  users removed: %s\n", joined(u["removed"], ", ").c_str());
        if (!u["password_changed"].empty())
            std::printf("  passwords changed: %s\n", joined(u["password_changed"], ", ").c_str());
        const json& s = r["rest_secrets"];
        if (!s["added"].empty())
            std::printf("  secrets added: ids %s\n", joined(s["added"], ", ").c_str());
        if (!s["retired"].empty())
            std::printf("  secrets retired: ids %s\n", joined(s["retired"], ", ").c_str());
    }
}

// A change's reply: what it did, in a line.
void print_change(const std::string& path, const json& r) {
    if (path == "/users/add")
        std::printf("added user %s (%s users)\n", r["added"].get<std::string>().c_str(),
                    r["users"].dump().c_str());
    else if (path == "/users/remove")
        std::printf("removed user %s (%s users); %s\n", r["removed"].get<std::string>().c_str(),
                    r["users"].dump().c_str(), r["note"].get<std::string>().c_str());
    else if (path == "/secrets/add")
        std::printf("accepted secret id %s (%s secrets)\n", r["id"].dump().c_str(),
                    r["secrets"].dump().c_str());
    else if (path == "/secrets/retire")
        std::printf("retired secret id %s (%s secrets); %s\n", r["retired"].dump().c_str(),
                    r["secrets"].dump().c_str(), r["note"].get<std::string>().c_str());
    else
        std::printf("%s %s %s the %s list; deny: %s; allow: %s\n",
                    r.contains("added") ? "added" : "removed",
                    (r.contains("added") ? r["added"] : r["removed"]).get<std::string>().c_str(),
                    r.contains("added") ? "to" : "from", r["list"].get<std::string>().c_str(),
                    joined(r["deny"]).c_str(), joined(r["allow"]).c_str());
}

// A secret value from a file ("-": standard input), its first line: kept off the command
// line, where `ps` shows it to every user of the machine.
std::string read_secret(const std::string& file, const std::string& option) {
    std::FILE* in = file == "-" ? stdin : std::fopen(file.c_str(), "r");
    if (in == nullptr)
        throw Failure{usage, option + " " + file + ": " + error_text(errno),
                      "give a readable file, or - for standard input"};
    std::string line;
    for (int c; (c = std::fgetc(in)) != EOF && c != '\n';) line += static_cast<char>(c);
    if (in != stdin) std::fclose(in);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

void print_help(const json& r, bool one) {
    if (!one) {
        Table table({"COMMAND", "PATH", "WHAT IT SHOWS"});
        for (const auto& c : r["commands"])
            table.add({c["punchctl"].get<std::string>(), c["path"].get<std::string>(),
                       c["help"].get<std::string>()});
        table.print();
        std::printf("\npunchctl help COMMAND describes one; global options: punchctl --help\n");
        return;
    }
    const json& c = r["commands"][0];
    std::printf("%s  (%s)\n  %s\n", c["punchctl"].get<std::string>().c_str(),
                c["path"].get<std::string>().c_str(), c["help"].get<std::string>().c_str());
    if (c["args"].empty()) {
        std::printf("  no options\n");
        return;
    }
    Table table({"  OPTION", "TYPE", "WHAT IT DOES"});
    for (const auto& a : c["args"]) {
        std::string type = a["type"].get<std::string>();
        if (a.contains("min")) type += " " + a["min"].dump() + ".." + a["max"].dump();
        table.add(
            {"  " + a["option"].get<std::string>(), type,
             a["help"].get<std::string>() + (a["required"].get<bool>() ? " (required)" : "")});
    }
    table.print();
}

volatile std::sig_atomic_t interrupted = 0;

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "punchctl: operate punchlined over its management socket.\n"
        "Exit codes: 0 ok, 1 the engine could not do it, 2 usage, 3 cannot reach the "
        "engine, 4 permission denied."};
    app.fallthrough();
    app.require_subcommand(1);
    std::string socket_path{default_socket};
    bool as_json = false;
    unsigned watch = 0;
    unsigned rounds = 0;
    int timeout_s = 5;
    app.add_option("--socket", socket_path, "the engine's management socket ([control] socket)")
        ->envname("PUNCHCTL_SOCKET")
        ->capture_default_str();
    app.add_flag("--json", as_json, "print the engine's JSON result, one object per line");
    app.add_option("--watch", watch, "repeat every N seconds until interrupted")
        ->check(CLI::Range(1, 3600));
    app.add_option("--count", rounds, "with --watch: stop after N rounds")
        ->check(CLI::Range(1, 1000000));
    app.add_option("--timeout", timeout_s, "seconds to wait for a reply")
        ->check(CLI::Range(1, 600))
        ->capture_default_str();

    std::string path;
    json args = json::object();
    std::vector<std::string> filters;  // the allocations options given, to print the next page
    std::vector<std::string> help_words;

    CLI::App* status = app.add_subcommand("status", "version, uptime, cores, roles, ports, links");
    CLI::App* stats = app.add_subcommand("stats",
                                         "per core and total: rates, handoffs, drops, "
                                         "table occupancy");
    unsigned window = 0;
    stats->add_option("--window", window, "seconds over which rates are computed (default 5)")
        ->check(CLI::Range(1, 300));
    CLI::App* allocations = app.add_subcommand("allocations", "the relay's TURN allocations");
    std::string user, client, after;
    unsigned core = 0, limit = 0;
    CLI::Option* user_option = allocations->add_option("--user", user, "only this username");
    CLI::Option* client_option =
        allocations->add_option("--client", client, "only this client: IP or IP:port");
    CLI::Option* core_option =
        allocations->add_option("--core", core, "only the worker on this lcore")
            ->check(CLI::Range(0, 1023));
    CLI::Option* limit_option = allocations->add_option("--limit", limit, "at most N (default 100)")
                                    ->check(CLI::Range(1, 1000));
    CLI::Option* after_option =
        allocations->add_option("--after", after, "the next page: a reply's LCORE:SLOT");
    // The relay's live changes (control/relay_commands.h): "users" lists, "users add" adds.
    CLI::App* users = app.add_subcommand("users", "the relay's long-term users; add, remove");
    users->require_subcommand(0, 1);
    std::string user_name, password, password_file;
    // "list" (and peer-policy's "show") are what the bare command does, for those who type it.
    users->add_subcommand("list", "list the users (as punchctl users)");
    CLI::App* users_add = users->add_subcommand("add", "add a long-term user (in memory)");
    users_add->add_option("--name", user_name, "the user's name")->required();
    CLI::Option* password_option =
        users_add->add_option("--password", password, "the password (visible in ps: prefer "
                                                      "--password-file)");
    CLI::Option* password_file_option = users_add->add_option(
        "--password-file", password_file, "read the password from FILE's first line (-: stdin)");
    password_option->excludes(password_file_option);
    CLI::App* users_remove = users->add_subcommand("remove", "remove a long-term user");
    users_remove->add_option("--name", user_name, "the user's name")->required();
    CLI::App* secrets = app.add_subcommand("secrets", "TURN REST shared secrets; add, retire");
    secrets->require_subcommand(0, 1);
    std::string secret, secret_file;
    unsigned secret_id = 0;
    secrets->add_subcommand("list", "list the secrets (as punchctl secrets)");
    CLI::App* secrets_add = secrets->add_subcommand("add", "accept one more shared secret");
    CLI::Option* secret_option = secrets_add->add_option(
        "--secret", secret, "the secret (visible in ps: prefer --secret-file)");
    CLI::Option* secret_file_option = secrets_add->add_option(
        "--secret-file", secret_file, "read the secret from FILE's first line (-: stdin)");
    secret_option->excludes(secret_file_option);
    CLI::App* secrets_retire =
        secrets->add_subcommand("retire", "stop accepting a shared secret");
    secrets_retire->add_option("--id", secret_id, "the secret's id (punchctl secrets)")
        ->required()
        ->check(CLI::Range(1u, 0xFFFFFFFFu));
    CLI::App* peer_policy =
        app.add_subcommand("peer-policy", "the relay's peer address policy; add, remove");
    peer_policy->require_subcommand(0, 1);
    std::string peer_list, peer_cidr;
    peer_policy->add_subcommand("show", "show the policy (as punchctl peer-policy)");
    CLI::App* peer_add = peer_policy->add_subcommand("add", "add an allow or deny entry");
    CLI::App* peer_remove = peer_policy->add_subcommand("remove", "remove an allow or deny entry");
    for (CLI::App* sub : {peer_add, peer_remove}) {
        sub->add_option("--list", peer_list, "allow or deny")->required();
        sub->add_option("--cidr", peer_cidr, "an address or a prefix, e.g. 203.0.113.0/24")
            ->required();
    }
    CLI::App* drain = app.add_subcommand(
        "drain", "refuse new allocations (300 or 508), keep the others; the allocations left");
    CLI::App* undrain = app.add_subcommand("undrain", "accept new allocations again");
    CLI::App* reload = app.add_subcommand("reload", "re-read the engine's configuration file");
    CLI::App* help = app.add_subcommand("help", "list the engine's commands, or describe one");
    help->add_option("command", help_words, "a command, e.g. stats");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        const int rc = app.exit(error);
        return rc == 0 ? ok : usage;
    }
    if (app.count("--count") != 0 && watch == 0) {
        std::fprintf(
            stderr,
            "punchctl: --count needs --watch N\n  try: punchctl --watch 1 --count %u stats\n",
            rounds);
        return usage;
    }

    if (status->parsed()) {
        path = "/status";
    } else if (stats->parsed()) {
        path = "/stats";
        if (stats->count("--window") != 0) args["window"] = window;
    } else if (allocations->parsed()) {
        path = "/allocations";
        if (user_option->count() != 0) {
            args["user"] = user;
            filters.push_back("--user " + user);
        }
        if (client_option->count() != 0) {
            args["client"] = client;
            filters.push_back("--client " + client);
        }
        if (core_option->count() != 0) {
            args["core"] = core;
            filters.push_back("--core " + std::to_string(core));
        }
        if (limit_option->count() != 0) {
            args["limit"] = limit;
            filters.push_back("--limit " + std::to_string(limit));
        }
        if (after_option->count() != 0) args["after"] = after;
    } else if (users->parsed()) {
        path = "/users";
        if (users_add->parsed()) {
            path = "/users/add";
            args["name"] = user_name;
            if (password_option->count() == 0 && password_file_option->count() == 0) {
                std::fprintf(stderr,
                             "punchctl: users add needs the password\n  try: punchctl users add "
                             "--name %s --password-file -\n",
                             user_name.c_str());
                return usage;
            }
        } else if (users_remove->parsed()) {
            path = "/users/remove";
            args["name"] = user_name;
        }
    } else if (secrets->parsed()) {
        path = "/secrets";
        if (secrets_add->parsed()) {
            path = "/secrets/add";
            if (secret_option->count() == 0 && secret_file_option->count() == 0) {
                std::fprintf(stderr, "punchctl: secrets add needs the secret\n  try: punchctl "
                                     "secrets add --secret-file -\n");
                return usage;
            }
        } else if (secrets_retire->parsed()) {
            path = "/secrets/retire";
            args["id"] = secret_id;
        }
    } else if (peer_policy->parsed()) {
        path = "/peer-policy";
        if (peer_add->parsed() || peer_remove->parsed()) {
            path = peer_add->parsed() ? "/peer-policy/add" : "/peer-policy/remove";
            args["list"] = peer_list;
            args["cidr"] = peer_cidr;
        }
    } else if (drain->parsed()) {
        path = "/drain";
    } else if (undrain->parsed()) {
        path = "/undrain";
    } else if (reload->parsed()) {
        path = "/reload";
    } else if (help->parsed()) {
        path = "/help";
        if (!help_words.empty()) {
            std::string command;
            for (const std::string& word : help_words)
                command += (word.starts_with('/') ? "" : "/") + word;
            args["command"] = command;
        }
    }

    std::signal(SIGINT, [](int) { interrupted = 1; });
    std::signal(SIGTERM, [](int) { interrupted = 1; });
    try {
        // Secrets read here, inside the try: a file that cannot be read is a usage error.
        if (path == "/users/add")
            args["password"] = password_file_option->count() != 0
                                   ? read_secret(password_file, "--password-file")
                                   : password;
        if (path == "/secrets/add")
            args["secret"] = secret_file_option->count() != 0
                                 ? read_secret(secret_file, "--secret-file")
                                 : secret;
        Connection connection(socket_path, timeout_s);
        for (unsigned round = 1;; ++round) {
            const json reply = connection.call(path, args);
            if (!reply.value("ok", false)) {
                const json error = reply.value("error", json::object());
                const std::string code = error.value("code", std::string("internal_error"));
                if (as_json) std::printf("%s\n", reply.dump().c_str());
                throw Failure{
                    exit_for(code),
                    error.value("message", std::string("(no message)")) + " [" + code + "]",
                    error.value("hint", std::string())};
            }
            const json& result = reply["result"];
            if (as_json) {
                std::printf("%s\n", result.dump().c_str());
            } else {
                if (watch != 0) {
                    char stamp[32];
                    const std::time_t now = std::time(nullptr);
                    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
                    std::printf("%s--- %s, every %u s (Ctrl-C stops)\n", round > 1 ? "\n" : "",
                                stamp, watch);
                }
                if (path == "/status")
                    print_status(result);
                else if (path == "/stats")
                    print_stats(result);
                else if (path == "/allocations")
                    print_allocations(result, filters);
                else if (path == "/users")
                    print_users(result);
                else if (path == "/secrets")
                    print_secrets(result);
                else if (path == "/peer-policy")
                    print_peer_policy(result);
                else if (path == "/drain" || path == "/undrain")
                    print_drain(result);
                else if (path == "/reload")
                    print_reload(result);
                else if (path.starts_with("/users/") || path.starts_with("/secrets/") ||
                         path.starts_with("/peer-policy/"))
                    print_change(path, result);
                else
                    print_help(result, args.contains("command"));
            }
            std::fflush(stdout);
            if (watch == 0 || (rounds != 0 && round >= rounds)) break;
            for (unsigned tenth = 0; tenth < watch * 10 && interrupted == 0; ++tenth)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            if (interrupted != 0) break;
        }
    } catch (const Failure& failure) {
        std::fprintf(stderr, "punchctl: %s\n", failure.message.c_str());
        if (!failure.hint.empty()) std::fprintf(stderr, "  try: %s\n", failure.hint.c_str());
        return failure.code;
    } catch (const std::exception& error) {
        // A reply of an unexpected shape (an engine of another version).
        std::fprintf(stderr, "punchctl: unexpected reply from the engine: %s\n", error.what());
        return engine_error;
    }
    return ok;
}
