// /users, /secrets, /peer-policy, /drain, /undrain, /reload (control/relay_commands.h).
#include "control/relay_commands.h"

#include <algorithm>
#include <array>
#include <map>
#include <stdexcept>
#include <utility>

#include "engine/config_diff.h"
#include "engine/peer_policy.h"
#include "engine/relay_table.h"
#include "stun/address.h"
#include "stun/attributes.h"
#include "stun/constants.h"
#include "stun/credentials.h"

namespace control {
namespace {

using nlohmann::json;

std::string address_text(const stun::Address& address) {
    std::array<char, 48> text{};
    return {text.data(), address.format(text)};
}

std::string ip_text(const stun::Address& address) {
    std::string text = address_text(address);
    text.erase(text.rfind(':'));
    if (!text.empty() && text.front() == '[') text = text.substr(1, text.size() - 2);
    return text;
}

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& word : words) out += (out.empty() ? "" : ", ") + word;
    return out.empty() ? "none" : out;
}

std::string bytes_text(std::size_t size) {
    return std::to_string(size) + (size == 1 ? " byte" : " bytes");
}

std::vector<std::string> user_names(const engine::RelayConfig& relay) {
    std::vector<std::string> names;
    for (const engine::RelayUser& user : relay.users) names.push_back(user.name);
    std::sort(names.begin(), names.end());
    return names;
}

json cidr_list(const std::vector<engine::Cidr>& list) {
    json out = json::array();
    for (const engine::Cidr& cidr : list) out.push_back(engine::to_string(cidr));
    return out;
}

const std::string cidr_expected = R"(an address or a prefix like "10.0.0.0/8" or "fc00::/7")";

}  // namespace

RelayCommands::RelayCommands(const EngineView& view, engine::EngineConfig& running,
                             RelayControl control)
    : view_(view), running_(running), control_(std::move(control)) {
    // The file's secrets, accepted since start-up.
    secret_infos_ = secret_infos(running_.relay.rest_secrets, true);
    for (SecretInfo& info : secret_infos_) info.added_ms = view_.start_ms;
}

void RelayCommands::register_in(Registry& registry) {
    const ArgumentSpec name{"name", ArgumentType::string,
                            "the user's name, as clients send it in USERNAME", "alice", true, 1,
                            static_cast<std::int64_t>(engine::max_username_length)};
    registry.add({"/users",
                  "the relay's long-term users: names and their allocations (never passwords)",
                  {},
                  [this](const Arguments&) { return users(); }});
    registry.add({"/users/add",
                  "add a long-term user (in memory: a reload or restart keeps the file's users)",
                  {name,
                   // The range is wide on purpose: add_user() judges the length without
                   // echoing the password, as the registry's own message would.
                   {"password", ArgumentType::string, "the user's password", "PASSWORD", true, 1,
                    4096}},
                  [this](const Arguments& arguments) { return add_user(arguments); }});
    registry.add({"/users/remove",
                  "remove a long-term user; its allocations fail authentication at their next "
                  "Refresh",
                  {name},
                  [this](const Arguments& arguments) { return remove_user(arguments); }});
    registry.add({"/secrets",
                  "the TURN REST shared secrets accepted: id, age and origin (never the secret)",
                  {},
                  [this](const Arguments&) { return secrets(); }});
    registry.add({"/secrets/add",
                  "accept one more TURN REST shared secret (rotation: add the new, then retire "
                  "the old)",
                  {{"secret", ArgumentType::string, "the shared secret, 16 bytes or more",
                    "SECRET", true, 1, 4096}},
                  [this](const Arguments& arguments) { return add_secret(arguments); }});
    registry.add({"/secrets/retire",
                  "stop accepting a TURN REST shared secret, by the id /secrets shows",
                  {{"id", ArgumentType::integer, "the secret's id in /secrets", "1", true, 1,
                    0xFFFFFFFF}},
                  [this](const Arguments& arguments) { return retire_secret(arguments); }});
    const std::vector<ArgumentSpec> entry = {
        {"list", ArgumentType::string, "which list: allow or deny", "deny", true, 4, 5},
        {"cidr", ArgumentType::string, "an address or a prefix", "203.0.113.0/24", true, 1, 64}};
    registry.add({"/peer-policy",
                  "the relay's peer address policy: default refused ranges, allow and deny lists, "
                  "own addresses",
                  {},
                  [this](const Arguments&) { return peer_policy(); }});
    registry.add({"/peer-policy/add", "add an entry to the allow or deny list", entry,
                  [this](const Arguments& arguments) {
                      return change_peer_policy(arguments, true);
                  }});
    registry.add({"/peer-policy/remove", "remove an entry from the allow or deny list", entry,
                  [this](const Arguments& arguments) {
                      return change_peer_policy(arguments, false);
                  }});
    registry.add({"/drain",
                  "refuse new allocations (300 to relay.alternate_server, else 508) and new SFU "
                  "legs (508), keep the others; report the allocations and legs left",
                  {},
                  [this](const Arguments&) { return drain(); }});
    registry.add({"/undrain", "accept new allocations and SFU legs again", {},
                  [this](const Arguments&) { return undrain(); }});
    registry.add({"/reload",
                  "re-read the configuration file: apply what can change live, refuse what needs "
                  "a restart",
                  {},
                  [this](const Arguments&) { return reload(); }});
}

void RelayCommands::require_relay(std::string_view path) const {
    if (!running_.relay.enabled)
        throw CommandError(ErrorCode::not_available,
                           std::string(path) +
                               ": this engine does not relay ([relay] enabled = false in its "
                               "configuration)",
                           "punchctl status");
}

void RelayCommands::apply(engine::RelayConfig next, bool draining, bool from_file) {
    try {
        control_.publish(next, draining);
    } catch (const std::exception& error) {
        // make_relay_context()'s runtime_error naming what to change, or RelayContext's
        // invalid_argument: either way nothing was published.
        throw CommandError(ErrorCode::refused,
                           std::string(error.what()) + "; nothing changed");
    }
    if (next.rest_secrets != running_.relay.rest_secrets)
        secret_infos_ = secret_infos(next.rest_secrets, from_file);
    running_.relay = std::move(next);
    draining_ = draining;
    ++publications_;
}

std::vector<RelayCommands::SecretInfo> RelayCommands::secret_infos(
    const std::vector<std::string>& secrets, bool from_file) {
    std::vector<SecretInfo> out;
    for (const std::string& secret : secrets) {
        const auto& old = running_.relay.rest_secrets;
        const auto same = std::find(old.begin(), old.end(), secret);
        const std::size_t at = static_cast<std::size_t>(same - old.begin());
        if (same != old.end() && at < secret_infos_.size()) {
            out.push_back(secret_infos_[at]);
        } else {
            out.push_back({next_secret_id_++, view_.now_ms(), from_file});
        }
    }
    return out;
}

void RelayCommands::require_credentials(const engine::RelayConfig& next,
                                        const std::string& what) const {
    if (!next.users.empty() || !next.rest_secrets.empty()) return;
    throw CommandError(ErrorCode::refused,
                       what + " would leave the relay without credentials: no user and no REST "
                              "secret, so no new request could authenticate; add another first",
                       "punchctl users add --name NAME --password PASSWORD");
}

json RelayCommands::users() const {
    require_relay("/users");
    // The tables keep a keyed hash of each username, with its own seed per worker
    // (relay_table.h): one pass over each table counts the allocations by hash and length,
    // then each name is looked up by its hash there.
    std::vector<std::map<std::pair<std::uint64_t, std::size_t>, std::uint64_t>> counts;
    for (const CoreView& core : view_.cores) {
        auto& count = counts.emplace_back();
        if (core.relay == nullptr) continue;
        (void)core.relay->table().list([&](const engine::AllocationSnapshot& a) {
            ++count[{a.username_hash, a.username_length}];
        });
    }
    json list = json::array();
    for (const std::string& name : user_names(running_.relay)) {
        std::uint64_t allocations = 0;
        for (std::size_t c = 0; c < view_.cores.size(); ++c) {
            if (view_.cores[c].relay == nullptr) continue;
            const auto it =
                counts[c].find({view_.cores[c].relay->table().username_hash(name), name.size()});
            if (it != counts[c].end()) allocations += it->second;
        }
        list.push_back({{"name", name}, {"allocations", allocations}});
    }
    return {{"users", std::move(list)}, {"rest_secrets", running_.relay.rest_secrets.size()}};
}

json RelayCommands::add_user(const Arguments& arguments) {
    require_relay("/users/add");
    const std::string written = *arguments.string("name");
    const std::string password = *arguments.string("password");
    // RFC 8489 §14.3: USERNAME is processed with OpaqueString (SASLprep here, as config.cc
    // does for relay.users) and is fewer than 509 bytes.
    std::array<char, 513> buffer{};
    std::string_view prepared;
    const stun::CredentialError name_error = stun::saslprep(written, buffer, prepared);
    const std::size_t name_limit = stun::text_send_limit(stun::attr::username);
    if (name_error != stun::CredentialError::ok || prepared.empty() ||
        prepared.size() > name_limit)
        throw CommandError(ErrorCode::bad_argument,
                           "argument \"name\" of /users/add: expected a non-empty name of at "
                           "most " + std::to_string(name_limit) +
                               " bytes that SASLprep (RFC 4013) accepts, got \"" + written +
                               "\"" +
                               (name_error != stun::CredentialError::ok
                                    ? " (" + std::string(stun::to_string(name_error)) + ")"
                                    : ""),
                           "punchctl users add --name alice --password PASSWORD");
    const std::string name(prepared);
    std::string_view prepared_password;
    const stun::CredentialError password_error =
        stun::saslprep(password, buffer, prepared_password);
    if (password_error != stun::CredentialError::ok)
        throw CommandError(ErrorCode::bad_argument,
                           "argument \"password\" of /users/add: expected a password of at most "
                           "512 bytes that SASLprep (RFC 4013) accepts, got a string of " +
                               bytes_text(password.size()) + " (" +
                               std::string(stun::to_string(password_error)) + ")",
                           "punchctl users add --name " + name + " --password PASSWORD");
    const auto& users = running_.relay.users;
    if (std::any_of(users.begin(), users.end(),
                    [&](const engine::RelayUser& u) { return u.name == name; }))
        throw CommandError(ErrorCode::refused,
                           "user \"" + name + "\" exists" +
                               (name != written ? " (\"" + written + "\" after SASLprep)" : "") +
                               "; to change a password, remove the user and add it again",
                           "punchctl users remove --name " + name);
    engine::RelayConfig next = running_.relay;
    next.users.push_back({name, password});
    apply(std::move(next), draining_);
    return {{"added", name}, {"users", running_.relay.users.size()}};
}

json RelayCommands::remove_user(const Arguments& arguments) {
    require_relay("/users/remove");
    const std::string name = *arguments.string("name");
    engine::RelayConfig next = running_.relay;
    const auto it = std::find_if(next.users.begin(), next.users.end(),
                                 [&](const engine::RelayUser& u) { return u.name == name; });
    if (it == next.users.end())
        throw CommandError(ErrorCode::refused,
                           "no user \"" + name + "\"; the users: " +
                               joined(user_names(running_.relay)),
                           "punchctl users");
    next.users.erase(it);
    require_credentials(next, "removing user \"" + name + "\"");
    apply(std::move(next), draining_);
    return {{"removed", name},
            {"users", running_.relay.users.size()},
            {"note", "its allocations stay until their next Refresh, CreatePermission or "
                     "ChannelBind, which fails authentication (401)"}};
}

json RelayCommands::secrets() const {
    require_relay("/secrets");
    const std::uint64_t now = view_.now_ms();
    json list = json::array();
    for (const SecretInfo& info : secret_infos_)
        list.push_back({{"id", info.id},
                        {"age_s", static_cast<double>(now - std::min(now, info.added_ms)) / 1000.0},
                        {"origin", info.from_file ? "file" : "punchctl"}});
    return {{"secrets", std::move(list)}};
}

json RelayCommands::add_secret(const Arguments& arguments) {
    require_relay("/secrets/add");
    const std::string secret = *arguments.string("secret");
    // config.cc's floor: every client's password is HMAC-SHA1(secret, username), enough to
    // search a short secret offline.
    if (secret.size() < shortest_secret)
        throw CommandError(ErrorCode::bad_argument,
                           "argument \"secret\" of /secrets/add: expected a secret of at least " +
                               std::to_string(shortest_secret) + " bytes, got a string of " +
                               bytes_text(secret.size()),
                           "punchctl secrets add --secret-file FILE");
    const auto& old = running_.relay.rest_secrets;
    if (const auto same = std::find(old.begin(), old.end(), secret); same != old.end())
        throw CommandError(
            ErrorCode::refused,
            "this secret is accepted already, as id " +
                std::to_string(secret_infos_[static_cast<std::size_t>(same - old.begin())].id),
            "punchctl secrets");
    engine::RelayConfig next = running_.relay;
    next.rest_secrets.push_back(secret);
    apply(std::move(next), draining_);
    return {{"id", secret_infos_.back().id}, {"secrets", running_.relay.rest_secrets.size()}};
}

json RelayCommands::retire_secret(const Arguments& arguments) {
    require_relay("/secrets/retire");
    const auto id = static_cast<std::uint32_t>(*arguments.integer("id"));
    const auto info = std::find_if(secret_infos_.begin(), secret_infos_.end(),
                                   [id](const SecretInfo& s) { return s.id == id; });
    if (info == secret_infos_.end()) {
        std::vector<std::string> ids;
        for (const SecretInfo& s : secret_infos_) ids.push_back(std::to_string(s.id));
        throw CommandError(ErrorCode::refused,
                           "no secret has id " + std::to_string(id) + "; the ids: " + joined(ids),
                           "punchctl secrets");
    }
    engine::RelayConfig next = running_.relay;
    next.rest_secrets.erase(next.rest_secrets.begin() + (info - secret_infos_.begin()));
    require_credentials(next, "retiring secret " + std::to_string(id));
    apply(std::move(next), draining_);
    return {{"retired", id},
            {"secrets", running_.relay.rest_secrets.size()},
            {"note", "allocations made with it stay until their next Refresh, CreatePermission "
                     "or ChannelBind, which fails authentication (401)"}};
}

json RelayCommands::peer_policy() const {
    require_relay("/peer-policy");
    json defaults = json::array();
    for (const engine::DefaultPeerRange& range : engine::default_peer_ranges())
        defaults.push_back({{"range", engine::to_string(range.range)},
                            {"reason", engine::to_string(range.verdict)},
                            {"help", engine::peer_verdicts[static_cast<std::size_t>(
                                                               range.verdict)]
                                         .help}});
    json own = json::array();
    for (const engine::PortConfig& port : running_.ports) {
        for (const stun::Address& a : port.ipv4) own.push_back(ip_text(a));
        for (const stun::Address& a : port.ipv6) own.push_back(ip_text(a));
    }
    return {{"order", "own addresses refused; deny; relayed addresses allowed; allow; defaults "
                      "refused; anything else allowed (engine/include/engine/peer_policy.h)"},
            {"own_addresses", std::move(own)},
            {"deny", cidr_list(running_.relay.peer_deny)},
            {"allow", cidr_list(running_.relay.peer_allow)},
            {"defaults", std::move(defaults)}};
}

json RelayCommands::change_peer_policy(const Arguments& arguments, bool add) {
    const std::string path = add ? "/peer-policy/add" : "/peer-policy/remove";
    const std::string verb = add ? "add" : "remove";
    require_relay(path);
    const std::string list_name = *arguments.string("list");
    const std::string text = *arguments.string("cidr");
    if (list_name != "allow" && list_name != "deny")
        throw CommandError(ErrorCode::bad_argument,
                           "argument \"list\" of " + path + ": expected allow or deny, got \"" +
                               list_name + "\"",
                           "punchctl peer-policy " + verb + " --list deny --cidr " + text);
    engine::Cidr cidr;
    if (const engine::CidrError error = engine::parse_cidr(text, cidr);
        error != engine::CidrError::ok)
        throw CommandError(ErrorCode::bad_argument,
                           "argument \"cidr\" of " + path + ": expected " + cidr_expected +
                               ", got \"" + text + "\" (" + std::string(engine::to_string(error)) +
                               ")",
                           "punchctl peer-policy " + verb + " --list " + list_name +
                               " --cidr 203.0.113.0/24");
    engine::RelayConfig next = running_.relay;
    std::vector<engine::Cidr>& list = list_name == "allow" ? next.peer_allow : next.peer_deny;
    const auto it = std::find(list.begin(), list.end(), cidr);
    if (add && it != list.end())
        throw CommandError(ErrorCode::refused,
                           engine::to_string(cidr) + " is in the " + list_name + " list already",
                           "punchctl peer-policy");
    if (!add && it == list.end())
        throw CommandError(ErrorCode::refused,
                           engine::to_string(cidr) + " is not in the " + list_name +
                               " list; it holds: " +
                               joined(cidr_list(list).get<std::vector<std::string>>()),
                           "punchctl peer-policy");
    if (add)
        list.push_back(cidr);
    else
        list.erase(it);
    apply(std::move(next), draining_);
    return {{add ? "added" : "removed", engine::to_string(cidr)},
            {"list", list_name},
            {"allow", cidr_list(running_.relay.peer_allow)},
            {"deny", cidr_list(running_.relay.peer_deny)}};
}

json RelayCommands::drain_progress() const {
    json cores = json::array();
    std::uint64_t total = 0;
    for (const CoreView& core : view_.cores) {
        if (core.relay == nullptr) continue;
        const auto summary =
            core.relay->table().list([](const engine::AllocationSnapshot&) {});
        cores.push_back({{"lcore", core.lcore}, {"allocations", summary.listed}});
        total += summary.listed;
    }
    const auto& alternate = running_.relay.alternate_server;
    json out = {{"draining", draining_},
                {"relay", running_.relay.enabled},
                {"alternate_server", alternate ? json(address_text(*alternate)) : json(nullptr)},
                {"allocations", total},
                {"cores", std::move(cores)}};
    if (covers_sfu()) out["sfu"] = sfu_->drain_progress();
    return out;
}

json RelayCommands::set_draining(std::string_view path, bool draining) {
    if (!running_.relay.enabled && !covers_sfu())
        throw CommandError(ErrorCode::not_available,
                           std::string(path) +
                               ": this engine neither relays ([relay] enabled = false) nor runs "
                               "an SFU (no [sfu] token_secrets): nothing to drain",
                           "punchctl status");
    // Again in the same state: nothing to publish, the progress to report. The relay first:
    // its publication is the one that can be refused (a context that cannot be built), and
    // then nothing has changed anywhere.
    const bool changed = draining_ != draining;
    if (changed && running_.relay.enabled) apply(running_.relay, draining);
    try {
        if (covers_sfu()) (void)sfu_->set_draining(draining);
    } catch (const CommandError&) {
        // The SFU's refusal says nothing changed: the relay's change is taken back.
        if (changed && running_.relay.enabled) apply(running_.relay, !draining);
        throw;
    }
    draining_ = draining;
    json out = drain_progress();
    out["changed"] = changed;
    return out;
}

json RelayCommands::drain() { return set_draining("/drain", true); }

json RelayCommands::undrain() { return set_draining("/undrain", false); }

json RelayCommands::reload() {
    engine::EngineConfig file;
    try {
        file = control_.load();
    } catch (const engine::ConfigError& error) {
        throw CommandError(ErrorCode::refused,
                           std::string(error.what()) + "; the running configuration stays",
                           "punchlined --check --config " + control_.config_path);
    }
    const engine::ConfigChanges changes = engine::diff_config(running_, file);
    if (!changes.restart.empty())
        throw CommandError(ErrorCode::refused,
                           control_.config_path + " changes " + joined(changes.restart) +
                               ", which only a restart applies; nothing changed (put the "
                               "running value back to reload the rest)",
                           "punchctl reload");
    json out = {{"file", control_.config_path}, {"changed", changes.live}};
    if (changes.live.empty()) return out;
    // What the reply tells of users and secrets: names and ids, never passwords or secrets.
    const std::vector<std::string> before = user_names(running_.relay);
    const std::vector<std::string> after = user_names(file.relay);
    json added = json::array();
    json removed = json::array();
    json changed_password = json::array();
    for (const std::string& name : after)
        if (!std::binary_search(before.begin(), before.end(), name)) added.push_back(name);
    for (const std::string& name : before)
        if (!std::binary_search(after.begin(), after.end(), name)) removed.push_back(name);
    for (const engine::RelayUser& user : file.relay.users)
        for (const engine::RelayUser& old : running_.relay.users)
            if (old.name == user.name && old.password != user.password)
                changed_password.push_back(user.name);
    std::vector<std::uint32_t> retired;
    for (std::size_t i = 0; i < running_.relay.rest_secrets.size(); ++i) {
        const auto& next = file.relay.rest_secrets;
        if (std::find(next.begin(), next.end(), running_.relay.rest_secrets[i]) == next.end())
            retired.push_back(secret_infos_[i].id);
    }
    const std::uint32_t first_new_id = next_secret_id_;
    apply(file.relay, draining_, true);
    json new_ids = json::array();
    for (const SecretInfo& info : secret_infos_)
        if (info.id >= first_new_id) new_ids.push_back(info.id);
    out["users"] = {{"added", added}, {"removed", removed}, {"password_changed", changed_password}};
    out["rest_secrets"] = {{"added", new_ids}, {"retired", retired}};
    return out;
}

}  // namespace control
