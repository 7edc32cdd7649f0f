// Tests for control/server.cc: the socket file (mode, group, a stale or live one already
// there), the JSON-line exchange over real Unix sockets, the per-client bounds, and the peer
// credential check. The server is driven as the control loop drives it: serve() whenever its
// epoll descriptor is readable, on this one thread. Waits poll for a condition with a
// generous bound (a liveness bound, not a timing threshold).
#include "control/server.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "control/protocol.h"
#include "control/registry.h"

namespace control {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "punchline-control.XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) std::abort();
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    [[nodiscard]] std::string operator/(const std::string& name) const {
        return (path_ / name).string();
    }
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

Registry test_registry() {
    Registry registry;
    registry.add({"/echo",
                  "echo",
                  {{"text", ArgumentType::string, "", "x", false, 0, 100000}},
                  [](const Arguments& a) { return a.json(); }});
    registry.add({"/big", "a 64 KiB reply", {}, [](const Arguments&) {
                      return json{{"data", std::string(64 * 1024, 'x')}};
                  }});
    return registry;
}

// Serves until `done` holds; false if it did not within 10 s.
bool pump(Server& server, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        pollfd p{server.fd(), POLLIN, 0};
        ::poll(&p, 1, 20);
        server.serve();
    }
    return true;
}

class Client {
public:
    explicit Client(const std::string& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        connected_ =
            ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
        ::fcntl(fd_, F_SETFL, O_NONBLOCK);
    }
    ~Client() { ::close(fd_); }
    [[nodiscard]] bool connected() const { return connected_; }
    [[nodiscard]] int fd() const { return fd_; }

    void send(const std::string& bytes) {
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return;
            sent += static_cast<std::size_t>(n);
        }
    }
    // Takes what has arrived; true once the peer closed.
    bool receive() {
        char buffer[65536];
        for (;;) {
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n > 0) {
                input_.append(buffer, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0) closed_ = true;
            return closed_;
        }
    }
    [[nodiscard]] bool has_line() const { return input_.find('\n') != std::string::npos; }
    [[nodiscard]] bool closed() const { return closed_; }
    json take_line() {
        const std::size_t end = input_.find('\n');
        EXPECT_NE(end, std::string::npos);
        const json line = json::parse(input_.substr(0, end));
        input_.erase(0, end + 1);
        return line;
    }
    // Serves `server` until a line arrives, and returns it (null on timeout).
    json reply(Server& server) {
        if (!pump(server,
                  [this] {
                      receive();
                      return has_line() || closed_;
                  }) ||
            !has_line())
            return nullptr;
        return take_line();
    }

private:
    int fd_ = -1;
    bool connected_ = false;
    bool closed_ = false;
    std::string input_;
};

std::string request(int id, const std::string& command, const json& args = json::object()) {
    return json{{"id", id}, {"command", command}, {"args", args}}.dump() + "\n";
}

TEST(ServerSocket, IsOwnerOnlyWithoutAGroup) {
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    struct stat status {};
    ASSERT_EQ(::stat((dir / "p.sock").c_str(), &status), 0);
    EXPECT_TRUE(S_ISSOCK(status.st_mode));
    EXPECT_EQ(status.st_mode & 07777, 0600u);
    EXPECT_EQ(status.st_uid, ::geteuid());
}

TEST(ServerSocket, WithAGroupIsGroupReadableAndTheGroups) {
    if (::geteuid() != 0) GTEST_SKIP() << "chown to another group needs root";
    const group* daemon = ::getgrnam("daemon");
    if (daemon == nullptr) GTEST_SKIP() << "no group daemon";
    const gid_t gid = daemon->gr_gid;
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "daemon", {}}, registry);
    struct stat status {};
    ASSERT_EQ(::stat((dir / "p.sock").c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0660u);
    EXPECT_EQ(status.st_gid, gid);
}

TEST(ServerSocket, CreatesItsMissingFolder) {
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "run/p.sock", "", {}}, registry);
    EXPECT_TRUE(fs::is_socket(dir / "run/p.sock"));
}

TEST(ServerSocket, RemovesItsFileWhenDestroyedButNotASuccessors) {
    TempDir dir;
    const Registry registry = test_registry();
    { Server server({dir / "p.sock", "", {}}, registry); }
    EXPECT_FALSE(fs::exists(dir / "p.sock"));
    auto first = std::make_unique<Server>(ServerOptions{dir / "p.sock", "", {}}, registry);
    fs::remove(dir / "p.sock");
    Server second({dir / "p.sock", "", {}}, registry);
    first.reset();
    EXPECT_TRUE(fs::is_socket(dir / "p.sock"));
}

TEST(ServerSocket, ReplacesAStaleSocket) {
    TempDir dir;
    // A socket file nobody listens on: what a killed engine leaves.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, (dir / "p.sock").c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    Client client(dir / "p.sock");
    ASSERT_TRUE(client.connected());
    client.send(request(1, "/echo"));
    EXPECT_EQ(client.reply(server)["ok"], true);
}

void expect_server_error(const ServerOptions& options, const std::string& message) {
    const Registry registry = test_registry();
    try {
        Server server(options, registry);
        ADD_FAILURE() << "no error; expected " << message;
    } catch (const ServerError& error) {
        EXPECT_NE(std::string(error.what()).find(message), std::string::npos) << error.what();
    }
}

TEST(ServerSocket, RefusesALiveSocket) {
    TempDir dir;
    const Registry registry = test_registry();
    Server first({dir / "p.sock", "", {}}, registry);
    expect_server_error({dir / "p.sock", "", {}},
                        "control.socket \"" + dir / "p.sock" +
                            "\": another process listens on it (another punchlined?); stop it, "
                            "or give this engine its own control.socket");
    EXPECT_TRUE(fs::is_socket(dir / "p.sock")) << "the first engine keeps its socket";
}

TEST(ServerSocket, RefusesAFileThatIsNotASocket) {
    TempDir dir;
    {
        std::FILE* f = std::fopen((dir / "p.sock").c_str(), "w");
        std::fclose(f);
    }
    expect_server_error({dir / "p.sock", "", {}},
                        "exists and is not a socket; remove it or choose another control.socket");
    EXPECT_TRUE(fs::is_regular_file(dir / "p.sock"));
}

TEST(ServerSocket, RefusesAFolderThatIsAFile) {
    TempDir dir;
    {
        std::FILE* f = std::fopen((dir / "run").c_str(), "w");
        std::fclose(f);
    }
    expect_server_error({dir / "run/p.sock", "", {}}, "/run is not a folder");
}

TEST(ServerSocket, RefusesAnUnknownGroup) {
    TempDir dir;
    expect_server_error({dir / "p.sock", "no-such-group-punchline", {}},
                        "control.group \"no-such-group-punchline\": no such group on this system "
                        "(getent group no-such-group-punchline; groupadd no-such-group-punchline)");
    EXPECT_FALSE(fs::exists(dir / "p.sock"));
}

TEST(ServerExchange, AnswersPipelinedRequestsInOrder) {
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    Client client(dir / "p.sock");
    client.send(request(1, "/echo", {{"text", "a"}}) + request(2, "/echo", {{"text", "b"}}) + "\n" +
                request(3, "/echo", {{"text", "c"}}));
    for (int id = 1; id <= 3; ++id) {
        const json r = client.reply(server);
        EXPECT_EQ(r["id"], id);
        EXPECT_EQ(r["ok"], true);
    }
    EXPECT_EQ(server.counters().requests, 3u) << "the blank line is no request";
}

TEST(ServerExchange, AnswersALineInPiecesAndWithCrLf) {
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    Client client(dir / "p.sock");
    const std::string line = request(9, "/echo");
    client.send(line.substr(0, 5));
    pump(server, [&] { return server.client_count() == 1; });
    server.serve();
    client.send(line.substr(5, line.size() - 6) + "\r\n");
    EXPECT_EQ(client.reply(server)["id"], 9);
}

TEST(ServerExchange, AMalformedLineIsAnsweredAndTheConnectionKept) {
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    Client client(dir / "p.sock");
    client.send("{\"command\": \n");
    const json error = client.reply(server);
    EXPECT_EQ(error["ok"], false);
    EXPECT_EQ(error["error"]["code"], "malformed_request");
    client.send(request(2, "/echo"));
    EXPECT_EQ(client.reply(server)["ok"], true);
    EXPECT_FALSE(client.closed());
}

TEST(ServerExchange, ALineOverTheBoundIsAnsweredSkippedAndTheConnectionKept) {
    TempDir dir;
    const Registry registry = test_registry();
    ServerLimits limits;
    limits.max_line_bytes = 100;
    Server server({dir / "p.sock", "", limits}, registry);
    Client client(dir / "p.sock");
    // Whole, then in pieces that pass the bound before their end.
    client.send(std::string(150, 'x') + "\n" + request(1, "/echo"));
    json r = client.reply(server);
    EXPECT_EQ(r["error"]["code"], "line_too_long");
    EXPECT_EQ(r["error"]["message"], "a request line may hold 100 bytes; this one held 150");
    EXPECT_EQ(client.reply(server)["id"], 1);
    client.send(std::string(120, 'y'));
    r = client.reply(server);
    EXPECT_EQ(r["error"]["code"], "line_too_long");
    client.send(std::string(5000, 'y'));
    client.send(std::string(10, 'y') + "\n" + request(2, "/echo"));
    EXPECT_EQ(client.reply(server)["id"], 2);
    EXPECT_EQ(server.counters().lines_too_long, 2u);
}

TEST(ServerExchange, ServesManyClientsAtOnce) {
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 40; ++i) clients.push_back(std::make_unique<Client>(dir / "p.sock"));
    for (int i = 0; i < 40; ++i) clients[i]->send(request(i, "/echo"));
    for (int i = 0; i < 40; ++i) EXPECT_EQ(clients[i]->reply(server)["id"], i);
    EXPECT_EQ(server.client_count(), 40u);
    clients.clear();
    EXPECT_TRUE(pump(server, [&] { return server.client_count() == 0; }));
}

TEST(ServerExchange, RefusesClientsBeyondItsLimit) {
    TempDir dir;
    const Registry registry = test_registry();
    ServerLimits limits;
    limits.max_clients = 2;
    Server server({dir / "p.sock", "", limits}, registry);
    Client a(dir / "p.sock");
    Client b(dir / "p.sock");
    ASSERT_TRUE(pump(server, [&] { return server.client_count() == 2; }));
    Client c(dir / "p.sock");
    const json r = c.reply(server);
    EXPECT_EQ(r["error"]["code"], "too_many_clients");
    EXPECT_TRUE(pump(server, [&] {
        c.receive();
        return c.closed();
    }));
    a.send(request(1, "/echo"));
    EXPECT_EQ(a.reply(server)["id"], 1);
    EXPECT_EQ(server.counters().refused_too_many, 1u);
}

TEST(ServerExchange, DropsAClientThatDoesNotReadItsReplies) {
    TempDir dir;
    const Registry registry = test_registry();
    ServerLimits limits;
    limits.max_output_bytes = 256 * 1024;
    Server server({dir / "p.sock", "", limits}, registry);
    Client slow(dir / "p.sock");
    Client other(dir / "p.sock");
    std::string requests;
    for (int i = 0; i < 200; ++i) requests += request(i, "/big");  // 200 × 64 KiB of replies
    slow.send(requests);
    ASSERT_TRUE(pump(server, [&] { return server.counters().dropped_slow == 1; }));
    EXPECT_LT(server.counters().requests, 200u) << "it stopped answering the slow client";
    other.send(request(5, "/echo"));
    EXPECT_EQ(other.reply(server)["id"], 5);
    EXPECT_EQ(server.client_count(), 1u);
}

TEST(ServerExchange, AnswersAClientThatClosedItsSendingSide) {
    TempDir dir;
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    Client client(dir / "p.sock");
    client.send(request(4, "/echo"));
    ::shutdown(client.fd(), SHUT_WR);
    EXPECT_EQ(client.reply(server)["id"], 4);
    EXPECT_TRUE(pump(server, [&] {
        client.receive();
        return client.closed();
    }));
    EXPECT_EQ(server.client_count(), 0u);
}

// Forks a child that connects as uid/gid 65534 (with `groups`), sends a request and exits 0
// when its reply has `ok` == expect_ok and (when refused) the code `code`.
int run_as_nobody(Server& server, const std::string& path, const std::vector<gid_t>& groups,
                  bool expect_ok, const std::string& code) {
    const pid_t child = ::fork();
    if (child == 0) {
        if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(65534) != 0 ||
            ::setuid(65534) != 0)
            ::_exit(10);
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
            ::_exit(11);
        const std::string line = request(1, "/echo");
        [[maybe_unused]] ssize_t ignored = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
        std::string input;
        char buffer[4096];
        ssize_t n;
        while (input.find('\n') == std::string::npos &&
               (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
            input.append(buffer, static_cast<std::size_t>(n));
        const json reply = json::parse(input.substr(0, input.find('\n')), nullptr, false);
        if (reply.is_discarded() || reply.value("ok", !expect_ok) != expect_ok) ::_exit(12);
        if (!expect_ok && reply["error"]["code"] != code) ::_exit(13);
        ::_exit(0);
    }
    int status = -1;
    EXPECT_TRUE(pump(server, [&] { return ::waitpid(child, &status, WNOHANG) == child; }));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ServerCredentials, RefusesAnotherUserEvenWhenTheFileModeLetsItIn) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
    TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    // The file's mode stops others first; loosened, the credential check still does.
    ::chmod((dir / "p.sock").c_str(), 0666);
    EXPECT_EQ(run_as_nobody(server, dir / "p.sock", {}, false, "permission_denied"), 0);
    EXPECT_EQ(server.counters().refused_credentials, 1u);
    EXPECT_EQ(server.counters().accepted, 0u);
}

TEST(ServerCredentials, AdmitsAMemberOfTheGroup) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
    const group* daemon = ::getgrnam("daemon");
    if (daemon == nullptr) GTEST_SKIP() << "no group daemon";
    const gid_t gid = daemon->gr_gid;
    TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "daemon", {}}, registry);
    // A supplementary member (SO_PEERGROUPS) gets in; one outside the group does not.
    EXPECT_EQ(run_as_nobody(server, dir / "p.sock", {gid}, true, ""), 0);
    ::chmod((dir / "p.sock").c_str(), 0666);
    EXPECT_EQ(run_as_nobody(server, dir / "p.sock", {}, false, "permission_denied"), 0);
}

TEST(ServerCredentials, TheFileModeKeepsOthersOut) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
    TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    const Registry registry = test_registry();
    Server server({dir / "p.sock", "", {}}, registry);
    EXPECT_EQ(run_as_nobody(server, dir / "p.sock", {}, false, ""), 11) << "connect() refused";
}

}  // namespace
}  // namespace control
