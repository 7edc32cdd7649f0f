// punchctl: the operator's CLI over punchlined's management socket (design.md §4).
//
//   punchctl [--socket PATH] [--json] [--watch N [--count K]] [--timeout S] COMMAND [OPTIONS]
//
// Each subcommand is a command path on the socket ("punchctl stats" is /stats); its options
// are the command's arguments (--window 10 is {"window": 10}). People get tables; --json
// prints the engine's result as it came, one JSON object per line (per round with --watch).
// Exit codes, for scripts (docs/operations.md):
//   0  success
//   1  the engine could not carry the command out (not_available, not_found, refused,
//      internal_error)
//   2  usage: punchctl's own options, or the engine refused the request as written
//      (unknown command or argument, bad or missing argument)
//   3  cannot reach the engine: no socket, nobody listening, too many clients, the
//      connection lost, or no reply within --timeout
//   4  permission denied: the socket file's mode, or the engine's credential check
//
// `punchctl top` is a live full-screen view (run_top() below) that quits with 0 on q or
// Ctrl-C; an engine that goes away is shown and tried again every second.
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
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
        case control::ErrorCode::not_found:
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
    if (r.contains("sfu") && r["sfu"]["enabled"].get<bool>())
        roles += std::string(roles.empty() ? "" : ", ") + "sfu (port " + r["sfu"]["port"].dump() +
                 ")";
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
    if (r.contains("sfu") && r["sfu"].contains("drain") &&
        r["sfu"]["drain"]["draining"].get<bool>())
        std::printf("sfu: DRAINING, %s leg(s) left (punchctl drain)\n",
                    r["sfu"]["drain"]["legs"].dump().c_str());
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
    // The relay's lines as before; the SFU's after them, where the engine runs one.
    const bool relay = r.value("relay", true);
    const bool sfu = r.contains("sfu");
    const std::string what = relay && sfu ? "new allocations and SFU legs"
                             : relay      ? "new allocations"
                                          : "new SFU legs";
    if (r["draining"].get<bool>()) {
        const std::string relay_answer =
            r["alternate_server"].is_null()
                ? "508 (no relay.alternate_server)"
                : "300 Try Alternate to " + r["alternate_server"].get<std::string>();
        std::printf("draining%s: ", r["changed"].get<bool>() ? " (from now)" : " (already)");
        if (relay) std::printf("new allocations get %s", relay_answer.c_str());
        if (relay && sfu) std::printf("; ");
        if (sfu) std::printf("new SFU legs get 508 \"SFU node draining\"");
        std::printf("\n");
    } else {
        std::printf("not draining%s: %s are accepted\n",
                    r["changed"].get<bool>() ? " any more" : "", what.c_str());
    }
    auto left = [](const json& cores, const char* key) {
        std::string out;
        for (const auto& c : cores)
            out += (out.empty() ? "" : ", ") + std::string("lcore") + c["lcore"].dump() + " " +
                   c[key].dump();
        return out;
    };
    if (relay)
        std::printf("%s allocation(s) left (%s)\n", r["allocations"].dump().c_str(),
                    left(r["cores"], "allocations").c_str());
    if (sfu)
        std::printf("%s SFU leg(s) left (%s)\n", r["sfu"]["legs"].dump().c_str(),
                    left(r["sfu"]["cores"], "legs").c_str());
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

// ---------------------------------------------------------------- the SFU role

// "punchctl node": NodeAgent::status() (control/node_agent.h) for people. A field the engine
// did not send (an older engine, or the agent not started) prints as "-".
void print_node(const json& r) {
    auto text = [](const json& object, const char* key) {
        const auto it = object.find(key);
        if (it == object.end() || it->is_null()) return std::string("-");
        return it->is_string() ? it->get<std::string>() : it->dump();
    };
    const std::string state = text(r, "state");
    if (state == "waiting_for_next_hop") {
        std::printf("node: not started yet: %s\n", text(r, "message").c_str());
        return;
    }
    std::printf("node: %s%s with punchcoord %s%s\n", state.c_str(),
                r["node_id"].is_null() ? "" : (" as node " + r["node_id"].dump()).c_str(),
                text(r, "coordinator").c_str(),
                r.value("draining", false) ? " | DRAINING: reported full (punchctl undrain)" : "");
    std::string nat = "NAT " + text(r, "nat_type");
    if (r.contains("discovery"))
        nat += " (mapping " + text(r["discovery"], "mapping") + ", filtering " +
               text(r["discovery"], "filtering") + "; discovered in " +
               text(r["discovery"], "elapsed_ms") + " ms)";
    else
        nat += " (configured)";
    std::printf("public address %s, %s, region %s\n", text(r, "public_address").c_str(),
                nat.c_str(), r.value("region", "").empty() ? "-" : text(r, "region").c_str());
    const json& c = r["counters"];
    std::printf("coordinator: %s connect(s), %s failed, %s disconnect(s) | %s registration(s), "
                "%s refused | %s heartbeat(s), %s expiry(ies), %s request timeout(s), %s bad "
                "line(s)\n",
                count(c["connects"]).c_str(), count(c["connect_failures"]).c_str(),
                count(c["disconnects"]).c_str(), count(c["registrations"]).c_str(),
                count(c["register_refusals"]).c_str(), count(c["heartbeats"]).c_str(),
                count(c["expiries"]).c_str(), count(c["request_timeouts"]).c_str(),
                count(c["bad_lines"]).c_str());
    std::uint64_t dropped = 0;
    std::string reasons;
    for (const auto& [reason, n] : c["punch_events_rejected"].items()) {
        dropped += n.get<std::uint64_t>();
        if (n.get<std::uint64_t>() != 0)
            reasons += (reasons.empty() ? "" : ", ") + reason + " " + count(n);
    }
    if (!reasons.empty()) reasons = " (" + reasons + ")";
    std::printf("sfu_punch orders: %s taken, %s dropped%s\n", count(c["punch_events"]).c_str(),
                std::to_string(dropped).c_str(), reasons.c_str());
    const json& p = r["punch"];
    std::printf("test packets: %s sent, %s send failure(s), %s frame(s) unsent | %s answer(s), "
                "%s with bad integrity | targets: %s, %s answered, %s unanswered, %s live, %s "
                "refused\n",
                count(p["requests_sent"]).c_str(), count(p["send_failures"]).c_str(),
                r.contains("frames_unsent") ? count(r["frames_unsent"]).c_str() : "-",
                count(p["answers"]).c_str(), count(p["answers_bad_integrity"]).c_str(),
                count(p["targets"]).c_str(), count(p["targets_answered"]).c_str(),
                count(p["targets_unanswered"]).c_str(), count(p["live_targets"]).c_str(),
                count(p["targets_refused"]).c_str());
    std::printf("discovery: %s run(s); %s datagram(s) ignored\n",
                count(c["discovery_runs"]).c_str(), count(c["datagrams_ignored"]).c_str());
}

// "punchctl sfu sessions": one line per session, its legs' traffic summed.
void print_sfu_summary(const json& r) {
    Table table({"SESSION", "LEGS", "PARTICIPANTS", "AGE", "IN", "OUT", "FILTERED"});
    for (const auto& s : r["sessions"]) {
        const json& m = s["summary"];
        table.add({s["session"].get<std::string>(), m["legs"].dump(),
                   joined(m["participants"], ","), duration(m["age_s"].get<double>()),
                   count(m["rx_packets"]) + " pkts " + si(m["rx_bytes"].get<double>()) + "B",
                   count(m["forwarded_packets"]) + " pkts " +
                       si(m["forwarded_bytes"].get<double>()) + "B",
                   count(m["filtered"])});
    }
    if (!r["sessions"].empty()) table.print();
    std::printf("%zu session(s), %s leg(s)", r["sessions"].size(), r["legs"].dump().c_str());
    if (r["skipped"].get<std::uint64_t>() != 0)
        std::printf(", %s skipped (changing while read)", r["skipped"].dump().c_str());
    std::printf("\n");
}

void print_sfu_sessions(const json& r) {
    Table table({"SESSION", "PARTICIPANT", "CLIENT", "LCORE", "AGE", "IDLE", "IN", "OUT",
                 "FILTERED", "PAUSED", "SSRCS"});
    for (const auto& s : r["sessions"])
        for (const auto& l : s["legs"])
            // A leg not yet (or no longer) in the membership forwards nothing: marked "*".
            table.add({s["session"].get<std::string>(),
                       l["participant"].get<std::string>() + (l["member"].get<bool>() ? "" : "*"),
                       l["client"].get<std::string>(), l["lcore"].dump(),
                       duration(l["age_s"].get<double>()), duration(l["idle_s"].get<double>()),
                       count(l["rx_packets"]) + " pkts " + si(l["rx_bytes"].get<double>()) + "B",
                       count(l["forwarded_packets"]) + " pkts " +
                           si(l["forwarded_bytes"].get<double>()) + "B",
                       count(l["filtered"]), l["paused"].empty() ? "-" : joined(l["paused"], ","),
                       l["ssrcs"].empty() ? "all" : joined(l["ssrcs"], ",")});
    if (!r["sessions"].empty()) table.print();
    std::printf("%zu session(s), %s leg(s)", r["sessions"].size(), r["legs"].dump().c_str());
    if (r["skipped"].get<std::uint64_t>() != 0)
        std::printf(", %s skipped (changing while read)", r["skipped"].dump().c_str());
    std::printf("%s\n", r["legs"].get<std::uint64_t>() != 0 ? "; * not yet a member" : "");
}

void print_sfu_change(const std::string& path, const json& r) {
    if (path == "/sfu/kill") {
        std::printf("kill sent for %zu leg(s) of session %s", r["sent"].size(),
                    r["session"].get<std::string>().c_str());
        if (!r["unsent"].empty())
            std::printf(", %zu not sent (command ring full: try again)", r["unsent"].size());
        std::printf("; %s\n", r["note"].get<std::string>().c_str());
    } else if (path == "/sfu/select") {
        const std::string ssrcs =
            r["ssrcs"].empty() ? "every SSRC" : "SSRCs " + joined(r["ssrcs"], ",");
        std::printf("%s in session %s receives %s\n", r["subscriber"].get<std::string>().c_str(),
                    r["session"].get<std::string>().c_str(), ssrcs.c_str());
    } else {
        std::printf("%ssession %s: %s pauses %s\n", r["changed"].get<bool>() ? "" : "(unchanged) ",
                    r["session"].get<std::string>().c_str(),
                    r["subscriber"].get<std::string>().c_str(),
                    r["paused"].empty() ? "no one" : joined(r["paused"], ", ").c_str());
    }
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

void print_kill(const json& r) {
    std::string per_core;
    for (const auto& c : r["cores"])
        per_core += std::string(per_core.empty() ? "" : ", ") + "lcore" + c["lcore"].dump() +
                    " " + c["killed"].dump() +
                    (c["state"] == "done" ? "" : " (" + c["state"].get<std::string>() + ")");
    const std::uint64_t killed = r["killed"].get<std::uint64_t>();
    std::printf("killed %llu allocation%s: %s\n", static_cast<unsigned long long>(killed),
                killed == 1 ? "" : "s", per_core.c_str());
}

volatile std::sig_atomic_t interrupted = 0;

// ---------------------------------------------------------------- punchctl top
//
// Plain ECMA-48 (ANSI) control sequences and termios, not ncurses: the view needs the
// alternate screen, cursor home, erase to the end of the line and reverse video, which every
// terminal an operator reaches over ssh understands, and the window's size (TIOCGWINSZ,
// SIGWINCH). ncurses would add a library and a terminfo look-up for no more than that.

volatile std::sig_atomic_t resized = 0;

// The terminal as it was, restored on every way out (q, Ctrl-C, SIGTERM, an error).
class RawTerminal {
public:
    RawTerminal() {
        if (::tcgetattr(STDIN_FILENO, &saved_) != 0)
            throw Failure{usage, "punchctl top needs a terminal on its input and output",
                          "punchctl --watch 1 stats"};
        termios raw = saved_;
        // Keys one at a time, unechoed; ISIG stays, so that Ctrl-C is a SIGINT (handled).
        raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        // The alternate screen (the shell's screen comes back on exit), cursor hidden.
        write_all("\x1b[?1049h\x1b[?25l");
    }
    ~RawTerminal() {
        write_all("\x1b[?25h\x1b[?1049l");
        ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

    static void write_all(std::string_view text) {
        while (!text.empty()) {
            const ssize_t n = ::write(STDOUT_FILENO, text.data(), text.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
            text.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    // Rows and columns; 24 × 80 when the terminal does not say.
    static std::pair<std::size_t, std::size_t> size() {
        winsize w{};
        if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) != 0 || w.ws_row == 0 || w.ws_col == 0)
            return {24, 80};
        return {w.ws_row, w.ws_col};
    }

private:
    termios saved_{};
};

// One frame: `lines` cut to the window, each erased to its end, the rest of the screen
// cleared, in one write so that the view does not flicker.
void draw(const std::vector<std::string>& lines) {
    const auto [rows, columns] = RawTerminal::size();
    std::string frame = "\x1b[H";
    for (std::size_t i = 0; i < lines.size() && i < rows; ++i) {
        std::string line = lines[i];
        // Reverse video is the only sequence in a line: "\x1b[7m" ... "\x1b[0m", not counted.
        const bool reverse = line.starts_with("\x1b[7m");
        std::string text = reverse ? line.substr(4, line.size() - 8) : line;
        if (text.size() > columns) text.resize(columns);
        if (reverse) text = "\x1b[7m" + text + std::string(columns - text.size(), ' ') + "\x1b[0m";
        frame += text + "\x1b[K";
        if (i + 1 < lines.size() && i + 1 < rows) frame += "\r\n";
    }
    frame += "\x1b[J";
    RawTerminal::write_all(frame);
}

// The view's lines from /status and /stats (the same results punchctl status and stats print).
std::vector<std::string> top_lines(const json& status, const json& stats, const std::string& when,
                                   std::size_t rows) {
    std::vector<std::string> lines;
    char text[512];
    std::snprintf(text, sizeof text, "punchlined %s  pid %s  up %s  %s  rates over %.1f s",
                  status["version"].get<std::string>().c_str(), status["pid"].dump().c_str(),
                  duration(status["uptime_s"].get<double>()).c_str(), when.c_str(),
                  stats["window_s"].get<double>());
    lines.push_back(text);
    lines.push_back("");
    auto row = [](const std::string& name, const json& c) {
        std::string allocations = "-";
        if (!c["allocations"].is_null())
            allocations =
                count(c["allocations"]["count"]) + "/" + count(c["allocations"]["capacity"]);
        char line[256];
        std::snprintf(line, sizeof line, "%-7s %9s %9s %9s %9s %10s %9s %12s  %s", name.c_str(),
                      si(c["rx"]["pps"].get<double>()).c_str(),
                      si(c["rx"]["bps"].get<double>()).c_str(),
                      si(c["tx"]["pps"].get<double>()).c_str(),
                      si(c["tx"]["bps"].get<double>()).c_str(),
                      si(c["handed_off"]["per_s"].get<double>()).c_str(),
                      si(c["dropped"]["per_s"].get<double>()).c_str(),
                      count(c["dropped"]["packets"]).c_str(), allocations.c_str());
        return std::string(line);
    };
    std::snprintf(text, sizeof text, "\x1b[7m%-7s %9s %9s %9s %9s %10s %9s %12s  %s\x1b[0m",
                  "CORE", "RX PPS", "RX BIT/S", "TX PPS", "TX BIT/S", "HANDOFF/S", "DROP/S",
                  "DROPPED", "ALLOCATIONS");
    lines.push_back(text);
    for (const auto& c : stats["cores"]) lines.push_back(row("lcore" + c["lcore"].dump(), c));
    lines.push_back(row("total", stats["total"]));
    lines.push_back("");
    // The drop reasons, busiest first (then the largest totals), as many as the window holds.
    std::vector<json> drops(stats["total"]["drops"].begin(), stats["total"]["drops"].end());
    std::sort(drops.begin(), drops.end(), [](const json& a, const json& b) {
        const double ra = a["per_s"].get<double>();
        const double rb = b["per_s"].get<double>();
        if (ra != rb) return ra > rb;
        return a["count"].get<std::uint64_t>() > b["count"].get<std::uint64_t>();
    });
    std::snprintf(text, sizeof text, "\x1b[7m%-32s %9s %14s\x1b[0m", "TOP DROP REASONS", "PER S",
                  "PACKETS");
    lines.push_back(text);
    if (drops.empty()) lines.push_back("(none)");
    for (const json& d : drops) {
        if (lines.size() + 2 > rows) break;  // keep the last line for the keys
        std::snprintf(text, sizeof text, "%-32s %9s %14s", d["reason"].get<std::string>().c_str(),
                      si(d["per_s"].get<double>()).c_str(), count(d["count"]).c_str());
        lines.push_back(text);
    }
    return lines;
}

// punchctl top: /status and /stats every second, drawn full-screen, until q or Ctrl-C (exit
// 0). An engine that cannot be reached (not started, restarting, gone) is shown with the
// reason and tried again every second; a refusal of our credentials ends top with exit 4.
int run_top(const std::string& socket_path, int timeout_s, unsigned window) {
    if (::isatty(STDIN_FILENO) == 0 || ::isatty(STDOUT_FILENO) == 0)
        throw Failure{usage, "punchctl top needs a terminal on its input and output",
                      "punchctl --watch 1 stats"};
    struct sigaction on_resize {};
    on_resize.sa_handler = [](int) { resized = 1; };
    ::sigaction(SIGWINCH, &on_resize, nullptr);
    RawTerminal terminal;
    std::unique_ptr<Connection> connection;
    std::string trouble;  // why the engine could not be read, shown until it can
    json status;
    json stats;
    auto refresh = [&] {
        try {
            if (!connection) connection = std::make_unique<Connection>(socket_path, timeout_s);
            const json s = connection->call("/status", json::object());
            const json t = connection->call("/stats", {{"window", window}});
            for (const json* reply : {&s, &t})
                if (!reply->value("ok", false)) {
                    const json error = reply->value("error", json::object());
                    const std::string code = error.value("code", std::string("internal_error"));
                    throw Failure{exit_for(code), error.value("message", std::string()) + " [" +
                                                      code + "]",
                                  error.value("hint", std::string())};
                }
            status = s["result"];
            stats = t["result"];
            trouble.clear();
        } catch (const Failure& failure) {
            if (failure.code == denied) throw;
            connection.reset();
            trouble = failure.message;
        }
    };
    auto now_text = [] {
        char stamp[16];
        const std::time_t now = std::time(nullptr);
        std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&now));
        return std::string(stamp);
    };
    auto render = [&] {
        const std::size_t rows = RawTerminal::size().first;
        std::vector<std::string> lines;
        if (!trouble.empty() || status.is_null()) {
            lines = {"punchctl top: " + socket_path + "  " + now_text(), "",
                     "\x1b[7mENGINE UNREACHABLE\x1b[0m", trouble,
                     "trying again every second"};
        } else {
            try {
                lines = top_lines(status, stats, now_text(), rows);
            } catch (const json::exception& error) {
                lines = {"punchctl top: unexpected reply from the engine: " +
                         std::string(error.what())};
            }
        }
        while (lines.size() + 1 < rows) lines.push_back("");
        lines.push_back("q quits");
        draw(lines);
    };
    using clock = std::chrono::steady_clock;
    auto next = clock::now();
    while (interrupted == 0) {
        if (clock::now() >= next) {
            refresh();
            render();
            next += std::chrono::seconds(1);
            if (next < clock::now()) next = clock::now() + std::chrono::seconds(1);
        }
        if (resized != 0) {
            resized = 0;
            render();
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(next - clock::now()).count();
        pollfd key{STDIN_FILENO, POLLIN, 0};
        if (::poll(&key, 1, static_cast<int>(std::max<long long>(left, 0))) > 0) {
            char keys[64];
            const ssize_t n = ::read(STDIN_FILENO, keys, sizeof keys);
            if (n == 0) break;  // the terminal went away
            for (ssize_t i = 0; i < n; ++i)
                if (keys[i] == 'q' || keys[i] == 'Q') return ok;
        }
    }
    return ok;
}

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
    CLI::App* kill = allocations->add_subcommand(
        "kill", "delete one allocation (--id or --client) or all of a user's (--user)");
    std::string kill_id, kill_client, kill_user;
    unsigned kill_core = 0;
    CLI::Option* kill_id_option =
        kill->add_option("--id", kill_id, "the allocation LCORE:SLOT, as the listing shows it");
    CLI::Option* kill_client_option =
        kill->add_option("--client", kill_client, "the allocation of this client IP:port");
    CLI::Option* kill_user_option =
        kill->add_option("--user", kill_user, "every allocation of this username");
    CLI::Option* kill_core_option =
        kill->add_option("--core", kill_core, "with --client or --user: only this lcore's")
            ->check(CLI::Range(0, 1023));
    CLI::App* top = app.add_subcommand(
        "top", "a live full-screen view: per-core rates, drops, allocations (q quits)");
    unsigned top_window = 1;
    top->add_option("--window", top_window, "seconds over which rates are computed")
        ->check(CLI::Range(1, 300))
        ->capture_default_str();
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
    // The engine as an SFU node of punchcoord ([node]; the /node command).
    CLI::App* node = app.add_subcommand(
        "node", "the engine as an SFU node of punchcoord: registration, public address, NAT "
                "type, heartbeats, sfu_punch orders, test packets");
    CLI::App* drain = app.add_subcommand(
        "drain", "refuse new allocations (300 or 508) and SFU legs (508), keep the others; the "
                 "allocations and legs left");
    CLI::App* undrain = app.add_subcommand("undrain", "accept new allocations and SFU legs again");
    CLI::App* reload = app.add_subcommand("reload", "re-read the engine's configuration file");
    // The SFU role (control/sfu_commands.h): "sfu" lists, "sfu kill" removes.
    CLI::App* sfu = app.add_subcommand("sfu", "the SFU's sessions and legs; kill, pause, resume, "
                                              "select");
    sfu->require_subcommand(0, 1);
    std::string sfu_session, sfu_participant, sfu_subscriber, sfu_publisher, sfu_ssrcs;
    CLI::Option* sfu_session_option =
        sfu->add_option("--session", sfu_session, "only this session (16 hex digits)");
    CLI::App* sfu_list = sfu->add_subcommand("list", "list the legs by session (as punchctl sfu)");
    sfu_list->fallthrough();  // --session after the word, as before it
    // "sessions": the command path's word (punchctl help shows "punchctl sfu sessions"): the
    // same listing, one line per session.
    CLI::App* sfu_sessions =
        sfu->add_subcommand("sessions", "one line per session: legs, age, traffic summed");
    sfu_sessions->fallthrough();
    CLI::App* sfu_kill = sfu->add_subcommand(
        "kill", "remove a session's legs (--session), or one leg (and --participant)");
    sfu_kill->add_option("--session", sfu_session, "the session id, as punchctl sfu lists it")
        ->required();
    CLI::Option* sfu_participant_option =
        sfu_kill->add_option("--participant", sfu_participant, "only this participant's leg");
    CLI::App* sfu_pause =
        sfu->add_subcommand("pause", "stop forwarding a publisher's media to a subscriber");
    CLI::App* sfu_resume =
        sfu->add_subcommand("resume", "forward a paused publisher's media to it again");
    for (CLI::App* sub : {sfu_pause, sfu_resume}) {
        sub->add_option("--session", sfu_session, "the session id")->required();
        sub->add_option("--subscriber", sfu_subscriber, "the participant that receives")
            ->required();
        sub->add_option("--publisher", sfu_publisher, "the participant whose media it receives")
            ->required();
    }
    CLI::App* sfu_select = sfu->add_subcommand(
        "select", "the RTP SSRCs a subscriber receives (--ssrcs \"\" for all again)");
    sfu_select->add_option("--session", sfu_session, "the session id")->required();
    sfu_select->add_option("--subscriber", sfu_subscriber, "the participant that receives")
        ->required();
    sfu_select->add_option("--ssrcs", sfu_ssrcs, "comma-separated SSRCs, decimal or 0x hex")
        ->required();
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
    } else if (kill->parsed()) {
        // The listing's options would pass through to allocations and be ignored.
        for (const CLI::Option* listing :
             {user_option, client_option, core_option, limit_option, after_option})
            if (listing->count() != 0) {
                std::fprintf(stderr,
                             "punchctl: %s belongs to the listing, not to kill\n"
                             "  try: punchctl allocations kill --id 1:37 (or --client IP:PORT, "
                             "--user NAME [--core N])\n",
                             listing->get_name().c_str());
                return usage;
            }
        path = "/allocations/kill";
        if (kill_id_option->count() != 0) args["id"] = kill_id;
        if (kill_client_option->count() != 0) args["client"] = kill_client;
        if (kill_user_option->count() != 0) args["user"] = kill_user;
        if (kill_core_option->count() != 0) args["core"] = kill_core;
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
    } else if (sfu->parsed()) {
        path = "/sfu/sessions";
        if (sfu_session_option->count() != 0) args["session"] = sfu_session;
        if (sfu_kill->parsed()) {
            path = "/sfu/kill";
            args["session"] = sfu_session;
            if (sfu_participant_option->count() != 0) args["participant"] = sfu_participant;
        } else if (sfu_pause->parsed() || sfu_resume->parsed()) {
            path = sfu_pause->parsed() ? "/sfu/pause" : "/sfu/resume";
            args["session"] = sfu_session;
            args["subscriber"] = sfu_subscriber;
            args["publisher"] = sfu_publisher;
        } else if (sfu_select->parsed()) {
            path = "/sfu/select";
            args["session"] = sfu_session;
            args["subscriber"] = sfu_subscriber;
            args["ssrcs"] = sfu_ssrcs;
        }
    } else if (node->parsed()) {
        path = "/node";
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

    // Without SA_RESTART: a signal ends top's wait for a key at once.
    struct sigaction on_interrupt {};
    on_interrupt.sa_handler = [](int) { interrupted = 1; };
    ::sigaction(SIGINT, &on_interrupt, nullptr);
    ::sigaction(SIGTERM, &on_interrupt, nullptr);
    if (top->parsed()) {
        try {
            return run_top(socket_path, timeout_s, top_window);
        } catch (const Failure& failure) {
            std::fprintf(stderr, "punchctl: %s\n", failure.message.c_str());
            if (!failure.hint.empty()) std::fprintf(stderr, "  try: %s\n", failure.hint.c_str());
            return failure.code;
        }
    }
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
                else if (path == "/allocations/kill")
                    print_kill(result);
                else if (path == "/users")
                    print_users(result);
                else if (path == "/secrets")
                    print_secrets(result);
                else if (path == "/peer-policy")
                    print_peer_policy(result);
                else if (path == "/drain" || path == "/undrain")
                    print_drain(result);
                else if (path == "/node")
                    print_node(result);
                else if (path == "/reload")
                    print_reload(result);
                else if (path == "/sfu/sessions" && sfu_sessions->parsed())
                    print_sfu_summary(result);
                else if (path == "/sfu/sessions")
                    print_sfu_sessions(result);
                else if (path.starts_with("/sfu/"))
                    print_sfu_change(path, result);
                else if (path.starts_with("/users/") || path.starts_with("/secrets/") ||
                         path.starts_with("/peer-policy/"))
                    print_change(path, result);
                else
                    print_help(result, args.contains("command"));
            }
            std::fflush(stdout);
            if (path == "/allocations/kill" && !result["unfinished"].empty()) {
                // The engine's wait ended first: the workers named go on with it, unless
                // their rings were full (nothing sent: the engine could not do it).
                bool unsent = false;
                for (const auto& c : result["cores"]) unsent = unsent || c["state"] == "ring_full";
                std::fprintf(stderr,
                             "punchctl: lcore(s) %s had not finished when the engine answered%s\n"
                             "  try: punchctl allocations%s\n",
                             joined(result["unfinished"], ", ").c_str(),
                             unsent ? ": their command rings were full, the kill was not sent"
                                    : "; they carry on",
                             kill_user_option->count() != 0 ? (" --user " + kill_user).c_str()
                                                            : "");
                if (unsent) return engine_error;
            }
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
