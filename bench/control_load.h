// The control plane of bench/engine_pipeline_bench.cc's --control-load runs (issue 5: forwarding
// while the control plane hammers the management socket, against idle). Benchmarks only: it
// allocates, makes system calls and starts threads, none of them on the worker's core.
//
// What runs is punchlined's control thread (engine/punchlined.cc), built from the same parts:
//   - ControlPlane: the management socket (control::Server, JSON lines on a Unix socket in a
//     temporary folder) with the real commands (control::EngineCommands' /stats and
//     /allocations over an EngineView of the bench's one worker; control::RelayCommands'
//     /users/add, /reload ...), served by a control thread pinned to another CPU than the
//     worker's, which polls the socket and ticks every 50 ms as punchlined's loop does. Live
//     changes publish as punchlined's publish_relay() does: a new RelayContext from the
//     configuration (engine::make_relay_context, the bench's nonce keys), in a copy of the
//     port's PortContext, rcu_assign_pointer, synchronize_rcu(), the old copy deleted. /reload
//     re-reads a configuration file that describes the bench's relay (relay_workload.h: realm,
//     user, addresses), written to the same folder.
//   - the hammer: a client thread on the control thread's CPU, connected to the socket, sending
//     one request at a time as fast as the replies come (punchctl's way, without its process,
//     and without parsing an /allocations page: its "next" is read from the text), until told
//     to stop:
//       list    every allocation, page by page (limit 1000, or another page size, "after"
//               the previous page's "next", as `punchctl allocations` pages), then /stats;
//               again
//       reload  /users/add of a new user (a publication), then /reload, which finds the file
//               without that user and publishes again; again
//       both    the two in turn
//     Every reply must be ok; the requests answered are counted by kind. One more load, for
//     the analysis, goes around the socket: rcu, synchronize_rcu() in a loop with nothing
//     published, the cost of the worker's quiescent states alone.
//
// The worker must be a registered QSBR reader that announces a quiescent state between polls
// (engine/worker.cc's worker_main), or goes offline: synchronize_rcu() waits for it.
#pragma once

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <urcu-qsbr.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/engine_commands.h"
#include "control/protocol.h"
#include "control/registry.h"
#include "control/relay_commands.h"
#include "control/server.h"
#include "engine/config.h"
#include "engine/relay_setup.h"
#include "engine/worker.h"
#include "relay_workload.h"

namespace control_load {

enum class Load : std::uint8_t { none, list, reload, both, rcu };

inline std::optional<Load> load_of(std::string_view name) {
    if (name == "none") return Load::none;
    if (name == "list") return Load::list;
    if (name == "reload") return Load::reload;
    if (name == "both") return Load::both;
    if (name == "rcu") return Load::rcu;
    return std::nullopt;
}

/// The requests the hammer had answered, by kind. Written by the client thread, read by the
/// worker's thread at a run's edges (relaxed: counts, which order nothing).
struct Operations {
    std::atomic<std::uint64_t> requests{0};      ///< every request answered ok
    std::atomic<std::uint64_t> pages{0};         ///< /allocations pages
    std::atomic<std::uint64_t> listings{0};      ///< complete passes over every allocation
    std::atomic<std::uint64_t> stats{0};         ///< /stats
    std::atomic<std::uint64_t> publications{0};  ///< /users/add and /reload: RCU publications
    std::atomic<std::uint64_t> grace_periods{0};  ///< rcu: synchronize_rcu() alone
    std::atomic<std::uint64_t> failures{0};       ///< replies not ok, or a broken connection

    struct Counts {
        std::uint64_t requests = 0, pages = 0, listings = 0, stats = 0, publications = 0,
                      grace_periods = 0;
        Counts operator-(const Counts& o) const {
            return {requests - o.requests,         pages - o.pages,
                    listings - o.listings,         stats - o.stats,
                    publications - o.publications, grace_periods - o.grace_periods};
        }
    };
    [[nodiscard]] Counts read() const noexcept {
        return {requests.load(std::memory_order_relaxed),
                pages.load(std::memory_order_relaxed),
                listings.load(std::memory_order_relaxed),
                stats.load(std::memory_order_relaxed),
                publications.load(std::memory_order_relaxed),
                grace_periods.load(std::memory_order_relaxed)};
    }
};

inline std::uint64_t monotonic_ms() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000 +
           static_cast<std::uint64_t>(now.tv_nsec) / 1000000;
}


/// The configuration that describes the bench's relay (relay_workload.h): its port (device
/// `device`, 198.18.0.2/24, gateway 198.18.0.1), realm "punchline", the user "bench", room for
/// `clients` allocations of that user, the worker on `worker_lcore`, the socket in `folder`.
inline std::string configuration_text(const std::string& folder, const std::string& device,
                                      unsigned worker_lcore, unsigned clients) {
    return "# Written by engine_pipeline_bench --control-load: bench/relay_workload.h's relay.\n"
           "[control]\nsocket = \"" + folder + "/control.sock\"\n\n"
           "# Not used: the bench initialised EAL itself.\n"
           "[eal]\nargs = [\"-l\", \"" + std::to_string(worker_lcore) + "\", \"--no-pci\"]\n\n"
           "[engine]\nworkers = [" + std::to_string(worker_lcore) + "]\n\n"
           "[stun]\nenabled = true\nport = " + std::to_string(relay_workload::turn_port) +
           "\nalternate_port = 0\nsoftware = \"\"\n\n"
           "[[port]]\ndevice = \"" + device + "\"\nipv4 = [\"198.18.0.2\"]\nprefix4 = 24\n"
           "gateway4 = \"198.18.0.1\"\nrx_checksum = \"verify\"\n\n"
           "[relay]\nenabled = true\nrealm = \"" + std::string(relay_workload::realm) + "\"\n"
           "users = [{ name = \"" + std::string(relay_workload::username) +
           "\", password = \"" + std::string(relay_workload::password) + "\" }]\n"
           "max_allocations = " + std::to_string(2 * clients) +
           "\nmax_allocations_per_user = " + std::to_string(clients + 1) + "\n";
}

class ControlPlane {
public:
    /// Writes the configuration to a fresh folder under /tmp, opens the management socket
    /// there and starts the control thread on `cpu`; it and the client run at SCHED_FIFO
    /// priority 1 when `realtime` (engine_pipeline_bench --realtime: on a machine that others
    /// share, the control plane then has its CPU as it would on a machine of its own; that
    /// needs root or CAP_SYS_NICE). `dataplane`'s port 0 is the relay's; its shard 0 belongs
    /// to the worker on `worker_lcore`. Throws std::runtime_error (or control::ServerError,
    /// engine::ConfigError) naming what failed.
    ControlPlane(engine::Dataplane& dataplane, const std::string& device, unsigned worker_lcore,
                 unsigned clients, unsigned cpu, bool realtime)
        : dataplane_(dataplane),
          cpu_(cpu),
          realtime_(realtime),
          original_context_(dataplane.ports.at(0).context) {
        {
            std::FILE* file = std::fopen(folder_.config.c_str(), "w");
            const std::string text =
                configuration_text(folder_.path, device, worker_lcore, clients);
            const bool written = file != nullptr &&
                                 std::fwrite(text.data(), 1, text.size(), file) == text.size();
            if (file == nullptr || std::fclose(file) != 0 || !written)
                throw std::runtime_error("cannot write " + folder_.config);
        }
        running_ = engine::load_config(folder_.config);

        view_.version = "engine_pipeline_bench";
        view_.config = &running_;
        view_.main_lcore = cpu;
        view_.cores.push_back({worker_lcore, &dataplane.counters[0],
                               dataplane.relay_shards.at(0).get()});
        view_.now_ms = monotonic_ms;
        view_.start_ms = monotonic_ms();
        view_.start_unix_ms = static_cast<std::uint64_t>(std::time(nullptr)) * 1000;
        view_.cycles_per_second = rte_get_tsc_hz();
        view_.relay_now = [] { return rte_rdtsc(); };
        view_.relay_ticks_per_second = rte_get_tsc_hz();
        commands_ = std::make_unique<control::EngineCommands>(view_);
        commands_->register_in(registry_);
        relay_commands_ = std::make_unique<control::RelayCommands>(
            view_, running_,
            control::RelayControl{
                [this](const engine::RelayConfig& relay, bool draining) {
                    publish(relay, draining);
                },
                [this] { return engine::load_config(folder_.config); }, folder_.config});
        relay_commands_->register_in(registry_);
        server_ = std::make_unique<control::Server>(
            control::ServerOptions{running_.control.socket, {}, {}}, registry_);
        control_thread_ = std::thread([this] { control_main(); });
        pin(control_thread_);
    }

    /// Stops the hammer and the control thread and frees the last published context (the
    /// worker must have stopped polling); the members then remove the socket and the folder.
    ~ControlPlane() {
        calm();
        stop_control_.store(true, std::memory_order_relaxed);
        if (control_thread_.joinable()) control_thread_.join();
        engine::DataplanePort& port = dataplane_.ports[0];
        if (port.context != original_context_) delete port.context;
        port.context = original_context_;
    }
    ControlPlane(const ControlPlane&) = delete;
    ControlPlane& operator=(const ControlPlane&) = delete;

    /// Starts the client thread with `load` (not none), its /allocations pages of
    /// `page_limit` allocations; returns at once.
    void hammer(Load load, std::int64_t page_limit = control::EngineCommands::max_page) {
        calm();
        stop_hammer_.store(false, std::memory_order_relaxed);
        client_thread_ =
            std::thread([this, load, page_limit] { client_main(load, page_limit); });
        pin(client_thread_);
    }
    /// Stops the client thread after its request in flight, and waits for it.
    void calm() {
        stop_hammer_.store(true, std::memory_order_relaxed);
        if (client_thread_.joinable()) client_thread_.join();
    }

    [[nodiscard]] const Operations& operations() const noexcept { return operations_; }
    /// The first failure's description (empty: none). Read after calm().
    [[nodiscard]] const std::string& first_failure() const noexcept { return first_failure_; }
    [[nodiscard]] std::uint64_t publications() const noexcept {
        return relay_commands_->publications();
    }

private:
    // punchlined's publish_relay() for the bench's one port: the new context built before
    // anything is published (a failure throws and leaves the engine as it was), published
    // with rcu_assign_pointer (a release store: the new context is whole before the worker
    // can see it; the worker reads it with rcu_dereference once per port per poll), then
    // synchronize_rcu() returns once the worker has passed a quiescent state (or is
    // offline), after which it holds no pointer to the old one. The control thread is not a
    // QSBR reader, so it may wait. The bench's own first context is not the heap's: kept.
    void publish(const engine::RelayConfig& relay, bool draining) {
        std::shared_ptr<const engine::RelayContext> context = engine::make_relay_context(
            relay, running_.ports.at(0), relay_workload::nonce_keys(), rte_get_tsc_hz(),
            draining);
        engine::DataplanePort& port = dataplane_.ports[0];
        engine::PortContext* old = port.context;
        auto* next = new engine::PortContext(*old);
        next->relay = std::move(context);
        rcu_assign_pointer(port.context, next);
        synchronize_rcu();
        if (old != original_context_) delete old;
    }

    // Threads start where their creator runs (the worker's CPU, which EAL pinned): moved
    // at once, before they do any work worth counting, and given their policy (SCHED_FIFO
    // priority 1 when `realtime`, else the normal one). Throws std::runtime_error.
    void pin(std::thread& thread) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu_, &set);
        const sched_param priority{realtime_ ? 1 : 0};
        int error = pthread_setschedparam(thread.native_handle(),
                                          realtime_ ? SCHED_FIFO : SCHED_OTHER, &priority);
        if (error == 0)
            error = pthread_setaffinity_np(thread.native_handle(), sizeof set, &set);
        if (error != 0) {
            stop_control_.store(true, std::memory_order_relaxed);
            stop_hammer_.store(true, std::memory_order_relaxed);
            thread.join();
            throw std::runtime_error("cannot pin a control-plane thread to CPU " +
                                     std::to_string(cpu_) + ": " + std::strerror(error));
        }
    }

    // punchlined's control loop, less its signals and metrics: the socket served when
    // readable, the stats history fed every 50 ms.
    void control_main() {
        constexpr std::uint64_t tick_ms = 50;
        std::uint64_t next_tick = monotonic_ms() + tick_ms;
        while (!stop_control_.load(std::memory_order_relaxed)) {
            const std::uint64_t now = monotonic_ms();
            pollfd ready{server_->fd(), POLLIN, 0};
            const int timeout = next_tick > now ? static_cast<int>(next_tick - now) : 0;
            if (::poll(&ready, 1, timeout) > 0) server_->serve();
            if (monotonic_ms() >= next_tick) {
                commands_->tick();
                next_tick += tick_ms;
                if (next_tick <= monotonic_ms()) next_tick = monotonic_ms() + tick_ms;
            }
        }
    }

    void fail(const std::string& what) {
        if (operations_.failures.fetch_add(1, std::memory_order_relaxed) == 0)
            first_failure_ = what;
    }

    void client_main(Load load, std::int64_t page_limit) {
        if (load == Load::rcu) {
            // A grace period after another, nothing published: what the worker's quiescent
            // states cost (the slow path of rcu_quiescent_state(), and a futex wake-up when
            // this thread went to sleep waiting), without a new context's cold lines.
            while (!stop_hammer_.load(std::memory_order_relaxed)) {
                synchronize_rcu();
                operations_.grace_periods.fetch_add(1, std::memory_order_relaxed);
            }
            return;
        }
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, running_.control.socket.c_str(),
                     sizeof address.sun_path - 1);
        if (fd < 0 ||
            ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
            fail("cannot connect to " + running_.control.socket + ": " + std::strerror(errno));
            if (fd >= 0) ::close(fd);
            return;
        }
        std::string input;
        std::uint64_t id = 0;
        // One request, its reply's "result" (null when it failed: counted, and the hammer
        // stops). `page`: an /allocations page (up to 1000 allocations, ≈ 0.3 MB of JSON) is
        // not parsed, only its "ok" and "next" read from the text, and {"next": ...} returned:
        // an operator's client runs in a process of its own, and parsing here would add its
        // memory traffic to the control thread's on this CPU. to_line() writes the keys sorted
        // (id, ok, result; in the result allocations, matched, next, skipped) and no
        // allocation has a key "next"; a reply that does not read so is parsed whole.
        auto request = [&](const char* command, nlohmann::json args,
                           bool page = false) -> nlohmann::json {
            const std::string line =
                nlohmann::json{{"command", command}, {"args", std::move(args)}, {"id", ++id}}
                    .dump() +
                "\n";
            for (std::size_t sent = 0; sent < line.size();) {
                const ssize_t n =
                    ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
                if (n <= 0) {
                    fail(std::string(command) + ": send(): " + std::strerror(errno));
                    return nullptr;
                }
                sent += static_cast<std::size_t>(n);
            }
            std::size_t end = 0;
            while ((end = input.find('\n')) == std::string::npos) {
                char buffer[65536];
                const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
                if (n <= 0) {
                    fail(std::string(command) + ": the engine closed the connection");
                    return nullptr;
                }
                input.append(buffer, static_cast<std::size_t>(n));
            }
            if (page) {
                const std::string_view text(input.data(), end);
                const std::size_t ok = text.find(R"("ok":true,"result":{"allocations":)");
                const std::size_t at = text.rfind(R"(,"next":)");
                const std::size_t value = at + 8;
                const std::size_t stop =
                    at == std::string_view::npos ? at : text.find(',', value);
                if (ok != std::string_view::npos && ok < 32 && stop != std::string_view::npos) {
                    nlohmann::json next =
                        nlohmann::json::parse(text.substr(value, stop - value), nullptr, false);
                    if (next.is_string() || next.is_null()) {
                        input.erase(0, end + 1);
                        operations_.requests.fetch_add(1, std::memory_order_relaxed);
                        return {{"next", std::move(next)}};
                    }
                }
            }
            nlohmann::json reply = nlohmann::json::parse(input.substr(0, end), nullptr, false);
            input.erase(0, end + 1);
            if (!reply.is_object() || reply.value("ok", false) != true ||
                !reply.contains("result")) {
                fail(std::string(command) + ": " + reply.dump());
                return nullptr;
            }
            operations_.requests.fetch_add(1, std::memory_order_relaxed);
            return std::move(reply["result"]);
        };
        const bool list = load == Load::list || load == Load::both;
        const bool reload = load == Load::reload || load == Load::both;
        std::uint64_t serial = 0;
        while (!stop_hammer_.load(std::memory_order_relaxed) &&
               operations_.failures.load(std::memory_order_relaxed) == 0) {
            if (list) {
                // Every allocation, as `punchctl allocations --limit 1000` pages through them.
                nlohmann::json after = nullptr;
                bool complete = false;
                while (!stop_hammer_.load(std::memory_order_relaxed)) {
                    nlohmann::json args = {{"limit", page_limit}};
                    if (!after.is_null()) args["after"] = after;
                    const nlohmann::json page = request("/allocations", std::move(args), true);
                    if (page.is_null()) break;
                    operations_.pages.fetch_add(1, std::memory_order_relaxed);
                    after = page.value("next", nlohmann::json(nullptr));
                    if (after.is_null()) {
                        complete = true;
                        break;
                    }
                }
                if (complete) operations_.listings.fetch_add(1, std::memory_order_relaxed);
                if (!request("/stats", nlohmann::json::object()).is_null())
                    operations_.stats.fetch_add(1, std::memory_order_relaxed);
            }
            if (reload && !stop_hammer_.load(std::memory_order_relaxed)) {
                // A new user (one publication), then the file, which lacks it (another).
                const std::string name = "hammer-" + std::to_string(++serial);
                if (!request("/users/add", {{"name", name}, {"password", "hammer-password"}})
                         .is_null())
                    operations_.publications.fetch_add(1, std::memory_order_relaxed);
                const nlohmann::json reloaded = request("/reload", nlohmann::json::object());
                if (!reloaded.is_null()) {
                    if (reloaded.value("changed", nlohmann::json::array()).empty())
                        fail("/reload found nothing to change after /users/add " + name);
                    else
                        operations_.publications.fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
        ::close(fd);
    }

    // A fresh folder under /tmp for the configuration and the socket, removed last (after
    // the server, which removes the socket file).
    struct Folder {
        std::string path;
        std::string config;
        Folder() {
            char name[] = "/tmp/engine_pipeline_bench-XXXXXX";
            if (mkdtemp(name) == nullptr)
                throw std::runtime_error(std::string("mkdtemp(/tmp/engine_pipeline_bench-...): ") +
                                         std::strerror(errno));
            path = name;
            config = path + "/engine.toml";
        }
        ~Folder() {
            ::unlink(config.c_str());
            ::rmdir(path.c_str());
        }
        Folder(const Folder&) = delete;
        Folder& operator=(const Folder&) = delete;
    };

    engine::Dataplane& dataplane_;
    unsigned cpu_;
    bool realtime_;
    engine::PortContext* original_context_;
    Folder folder_;
    engine::EngineConfig running_;
    control::EngineView view_;
    control::Registry registry_;
    std::unique_ptr<control::EngineCommands> commands_;
    std::unique_ptr<control::RelayCommands> relay_commands_;
    std::unique_ptr<control::Server> server_;
    std::atomic<bool> stop_control_{false};
    std::atomic<bool> stop_hammer_{true};
    std::thread control_thread_;
    std::thread client_thread_;
    Operations operations_;
    std::string first_failure_;
};

}  // namespace control_load
