// The management socket's commands for the SFU role (design.md §3, role `sfu`; docs/sfu.md,
// "Legs, sessions, membership"): /sfu/sessions, /sfu/kill, /sfu/pause, /sfu/resume and
// /sfu/select.
//
// What each reads or changes, and who carries it out:
//   - /sfu/sessions lists the legs of every worker's SfuTable through its seqlock listing
//     (engine/sfu_table.h), which never makes a worker wait, grouped by session, with what the
//     control thread's model (SfuMembershipBuilder) says of each: whether it is in the
//     published membership yet, and the subscriber's selection; each session with a summary
//     of its legs (their count, the oldest one's age, datagrams and bytes in, copies and
//     bytes out, copies filtered), summed from the same reads.
//   - /sfu/kill sends an SfuKill (cause operator_kill) for each leg named to the worker that
//     owns it, on the command ring apply_sfu_messages() uses for a race's loser: the worker
//     erases the leg itself (engine::kill_leg) and posts its leave, which takes the member out
//     of the membership on the control thread's next pass. Nothing acknowledges a kill: the
//     reply says what was sent; `punchctl sfu` shows when it is gone.
//   - /sfu/pause, /sfu/resume and /sfu/select change the model and publish a new membership
//     at once (the control thread is the RCU writer, as for joins and leaves): the workers
//     forward by it from their next burst.
//   - The drain (/drain and /undrain, which control/relay_commands.h registers and which call
//     set_draining() here) publishes a new SfuContext with its flag (SfuControl::
//     publish_draining): a new leg is refused with 508 (sfu_draining), the legs admitted carry
//     on; punchlined also has the node agent tell punchcoord. drain_progress() counts the legs
//     left per worker and in all.
// Nothing here touches DPDK: punchlined hands the rings and the publication over as callbacks
// (SfuControl), so that the commands build and test without EAL (style rule 4).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/engine_commands.h"
#include "control/registry.h"
#include "engine/sfu_role.h"
#include "engine/sfu_table.h"

namespace control {

/// What punchlined lets these commands do to the running SFU; every callback runs on the
/// control thread.
struct SfuControl {
    /// One shard per worker, in the order of EngineView::cores (empty: no sfu role).
    std::vector<const engine::SfuShard*> shards;
    /// The control thread's model of the sessions (null: no sfu role).
    engine::SfuMembershipBuilder* builder = nullptr;
    /// Builds a membership from `builder`, publishes it through RCU and returns once no worker
    /// can read the old one.
    std::function<void()> publish;
    /// Posts `kill` to the worker shards[worker]; false when its command ring is full.
    std::function<bool(std::size_t worker, const engine::SfuKill& kill)> send_kill;
    /// The workers' SFU clock (SfuState::now_ticks: the TSC in punchlined) and its rate.
    std::function<std::uint64_t()> now_ticks;
    std::uint64_t ticks_per_second = 1;
    /// Publishes a context with the drain state `draining` through RCU and returns once no
    /// worker can read the old one; tells the node agent (when the engine is a node). Throws
    /// std::exception when it cannot be built: then nothing is published.
    std::function<void(bool draining)> publish_draining;
};

class SfuCommands {
public:
    /// `view` must outlive this (its cores name the workers' lcores).
    SfuCommands(const EngineView& view, SfuControl control);

    /// Registers the commands of the header comment (the registry must not outlive this).
    void register_in(Registry& registry);

    /// Sessions (sorted by id) and their legs; "session" narrows it to one.
    [[nodiscard]] nlohmann::json sessions(const Arguments& arguments) const;
    /// A whole session ("session"), or one leg ("session" and "participant").
    nlohmann::json kill(const Arguments& arguments);
    /// "publisher" paused (or resumed) for "subscriber" in "session".
    nlohmann::json pause(const Arguments& arguments, bool paused);
    /// "subscriber"'s SSRC allow-list in "session" ("ssrcs": comma-separated; empty clears).
    nlohmann::json select(const Arguments& arguments);

    /// Whether the engine runs the SFU role (the commands are not_available otherwise).
    [[nodiscard]] bool enabled() const noexcept {
        return control_.builder != nullptr && !control_.shards.empty();
    }
    [[nodiscard]] bool draining() const noexcept { return draining_; }
    /// Drains (refuses new legs) or undrains; publishes only a change, which it returns.
    /// Throws CommandError refused (nothing changed) when the publication fails.
    bool set_draining(bool draining);
    /// Whether the SFU drains and the legs left per worker ("cores": lcore, legs) and in all
    /// ("legs"), for /drain, /undrain and /status.
    [[nodiscard]] nlohmann::json drain_progress() const;

    /// The session id as tokens and the listing write it: 16 lowercase hex digits.
    [[nodiscard]] static std::string session_text(std::uint64_t session);
    /// 1 to 16 hex digits (either case); nullopt otherwise.
    [[nodiscard]] static std::optional<std::uint64_t> parse_session(std::string_view text);
    /// Comma-separated SSRCs, each decimal or 0x-hex, 0..2^32-1, at most 64; the empty string
    /// is the empty list. nullopt for anything else.
    [[nodiscard]] static std::optional<std::vector<std::uint32_t>> parse_ssrcs(
        std::string_view text);

    /// The most SSRCs one selection takes (a subscriber's allow-list is searched per copy).
    static constexpr std::size_t max_ssrcs = 64;

private:
    void require_sfu(std::string_view path) const;
    [[nodiscard]] std::uint64_t session_argument(const Arguments& arguments,
                                                 std::string_view path,
                                                 std::string_view example) const;
    // The model's member, or CommandError not_found naming the session's participants.
    void require_member(std::uint64_t session, const std::string& participant,
                        std::string_view path, std::string_view argument) const;

    const EngineView& view_;
    SfuControl control_;
    std::uint32_t kill_sequence_ = 0;
    bool draining_ = false;
};

}  // namespace control
