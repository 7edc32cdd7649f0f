// The management socket's commands that change the running relay (design.md §4: "users",
// "secrets", "peer-policy", "drain", "reload"): /users, /users/add, /users/remove, /secrets,
// /secrets/add, /secrets/retire, /peer-policy, /peer-policy/add, /peer-policy/remove, /drain,
// /undrain and /reload.
//
// Every change is a new snapshot, never an edit of what the workers read (design.md §3, RCU):
// the command builds the next RelayConfig from the running one, checks it whole, and hands it
// to RelayControl::publish, which builds a new RelayContext for each port on the control
// thread, publishes it with rcu_assign_pointer, waits in synchronize_rcu() until no worker can
// still hold the old one, and frees it (engine/punchlined.cc). Only once that succeeded is the
// running configuration (EngineConfig::relay, which /status and /allocations read) replaced:
// a change that cannot be built leaves the engine as it was and says why. The workers never
// wait: they pass a quiescent state once per loop iteration whatever the control thread does.
//
// What a change does not do. The nonce keys stay (relay_setup.h), so a client's nonce stays
// valid across every change. Allocations stay: a removed user's, or one made with a retired
// REST secret, carries on relaying until its next Refresh, CreatePermission or ChannelBind,
// which fails authentication (401); the client then has no way to renew it and it expires
// (punchctl allocations --user NAME lists them). Changes made here live in memory only: a
// reload (this file's /reload, or SIGHUP) replaces users, secrets and the peer lists with the
// file's, and a restart starts from the file.
//
// Drain: new Allocates are refused (engine/relay_role.h, RelayDrain) with 300 Try Alternate
// and ALTERNATE-SERVER when relay.alternate_server is set, else 508; Refresh, CreatePermission,
// ChannelBind and the data of existing allocations carry on until the allocations end. /drain
// reports the allocations left per worker and in all, as /status does while draining. A drain
// covers the SFU role too, where the engine runs it (cover_sfu(); control/sfu_commands.h): new
// legs are refused (508), the legs admitted carry on, and the reply has the legs left under
// "sfu". An engine that runs either role drains; one that runs neither: not_available.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/engine_commands.h"
#include "control/registry.h"
#include "control/sfu_commands.h"
#include "engine/config.h"

namespace control {

/// What punchlined lets these commands do to the running engine; both run on the control
/// thread.
struct RelayControl {
    /// Builds the relay's context of every port from `relay` and `draining`, publishes them
    /// and returns once no worker can read the old ones. Throws std::runtime_error, naming what
    /// to change, when a context cannot be built: then nothing is published.
    std::function<void(const engine::RelayConfig& relay, bool draining)> publish;
    /// Reads and validates the configuration file the engine was started with. Throws
    /// engine::ConfigError (its key and line).
    std::function<engine::EngineConfig()> load;
    /// That file's path, for messages.
    std::string config_path;
};

class RelayCommands {
public:
    /// `view` and `running` (the engine's configuration, the one `view` shows) must outlive
    /// this; `running.relay` is replaced by every change that is published.
    RelayCommands(const EngineView& view, engine::EngineConfig& running, RelayControl control);

    /// Registers the commands of the header comment (the registry must not outlive this).
    void register_in(Registry& registry);
    /// Makes /drain and /undrain cover `sfu`'s role as well (it must outlive this); nothing
    /// when it runs no SFU.
    void cover_sfu(SfuCommands& sfu) { sfu_ = &sfu; }

    [[nodiscard]] nlohmann::json users() const;
    nlohmann::json add_user(const Arguments& arguments);
    nlohmann::json remove_user(const Arguments& arguments);
    [[nodiscard]] nlohmann::json secrets() const;
    nlohmann::json add_secret(const Arguments& arguments);
    nlohmann::json retire_secret(const Arguments& arguments);
    [[nodiscard]] nlohmann::json peer_policy() const;
    nlohmann::json change_peer_policy(const Arguments& arguments, bool add);
    nlohmann::json drain();
    nlohmann::json undrain();
    /// Re-reads the file: applies what may change live and says what changed, or refuses
    /// whole (the running configuration stays) for a file error or a key that needs a restart.
    nlohmann::json reload();

    [[nodiscard]] bool draining() const noexcept { return draining_; }
    /// Whether the engine drains, its alternate server, and the allocations left per worker
    /// and in all (for /drain and /status); "relay": whether it relays; "sfu": the SFU's
    /// drain_progress() where it runs one.
    [[nodiscard]] nlohmann::json drain_progress() const;
    /// Snapshots published since start-up (every accepted change is one).
    [[nodiscard]] std::uint64_t publications() const noexcept { return publications_; }

    /// The shortest REST secret accepted (config.cc's floor for relay.rest_secrets).
    static constexpr std::size_t shortest_secret = 16;

private:
    // A REST secret's bookkeeping, parallel to running_.relay.rest_secrets: the secret itself
    // is never shown, so an operator names it by its id.
    struct SecretInfo {
        std::uint32_t id = 0;
        std::uint64_t added_ms = 0;  // view_.now_ms() when it was first accepted
        bool from_file = false;
    };

    void require_relay(std::string_view path) const;
    // /drain and /undrain: the relay's, the SFU's, or both.
    nlohmann::json set_draining(std::string_view path, bool draining);
    [[nodiscard]] bool covers_sfu() const noexcept { return sfu_ != nullptr && sfu_->enabled(); }
    // Publishes `next` (and `draining`) and adopts it, the secrets it adds marked as the
    // file's or punchctl's; CommandError refused when it cannot be built.
    void apply(engine::RelayConfig next, bool draining, bool from_file = false);
    // The bookkeeping for `secrets`: ids and ages kept for secrets already accepted.
    [[nodiscard]] std::vector<SecretInfo> secret_infos(const std::vector<std::string>& secrets,
                                                       bool from_file);
    // Refuses a change that leaves no credential: config.cc's rule for the file, kept live.
    void require_credentials(const engine::RelayConfig& next, const std::string& what) const;

    const EngineView& view_;
    engine::EngineConfig& running_;
    RelayControl control_;
    SfuCommands* sfu_ = nullptr;
    bool draining_ = false;
    std::vector<SecretInfo> secret_infos_;
    std::uint32_t next_secret_id_ = 1;
    std::uint64_t publications_ = 0;
};

}  // namespace control
