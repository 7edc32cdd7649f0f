// Tests for control/registry.cc and control/protocol.cc: the JSON-line protocol's requests and
// replies, and one named case per error the registry answers.
#include "control/registry.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "control/protocol.h"

namespace control {
namespace {

using nlohmann::json;

// A registry with /echo (a required string, an integer 1..10, a boolean), /fail (a handler's
// own error) and /crash (a handler that throws something else).
Registry make_registry() {
    Registry registry;
    registry.add({"/echo",
                  "returns its arguments",
                  {{"text", ArgumentType::string, "what to echo", "hello", true, 1, 8},
                   {"times", ArgumentType::integer, "how often", "3", false, 1, 10},
                   {"loud", ArgumentType::boolean, "shout", "", false}},
                  [](const Arguments& arguments) { return arguments.json(); }});
    registry.add({"/fail", "fails", {}, [](const Arguments&) -> json {
                      throw CommandError(ErrorCode::not_available, "no such role here",
                                         "punchctl status");
                  }});
    registry.add({"/crash", "crashes", {}, [](const Arguments&) -> json {
                      throw std::runtime_error("boom");
                  }});
    registry.add({"/stats/drops", "nested", {}, [](const Arguments&) { return json{{"n", 1}}; }});
    return registry;
}

json reply(const Registry& registry, const std::string& line) { return registry.handle_line(line); }

TEST(Registry, RunsACommandAndEchoesTheId) {
    const Registry registry = make_registry();
    const json r =
        reply(registry,
              R"({"id": 7, "command": "/echo", "args": {"text": "hi", "times": 3, "loud": true}})");
    EXPECT_EQ(r["id"], 7);
    EXPECT_EQ(r["ok"], true);
    EXPECT_EQ(r["result"], (json{{"text", "hi"}, {"times", 3}, {"loud", true}}));
}

TEST(Registry, IdMayBeAnyJsonValueAndArgsMayBeAbsent) {
    const Registry registry = make_registry();
    const json r = reply(registry, R"({"id": {"client": "x"}, "command": "/stats/drops"})");
    EXPECT_EQ(r["id"], (json{{"client", "x"}}));
    EXPECT_EQ(r["result"]["n"], 1);
}

TEST(Registry, WithoutAnIdTheReplyIdIsNull) {
    const Registry registry = make_registry();
    EXPECT_TRUE(reply(registry, R"({"command": "/stats/drops"})")["id"].is_null());
}

TEST(Registry, HelpListsEveryCommandInPathOrder) {
    const Registry registry = make_registry();
    const json r = reply(registry, R"({"command": "/help"})");
    ASSERT_EQ(r["ok"], true);
    std::vector<std::string> paths;
    for (const json& c : r["result"]["commands"]) paths.push_back(c["path"]);
    EXPECT_EQ(paths,
              (std::vector<std::string>{"/crash", "/echo", "/fail", "/help", "/stats/drops"}));
    EXPECT_EQ(r["result"]["commands"][4]["punchctl"], "punchctl stats drops");
}

TEST(Registry, HelpDescribesOneCommandWithItsArguments) {
    const Registry registry = make_registry();
    const json r = reply(registry, R"({"command": "/help", "args": {"command": "/echo"}})");
    ASSERT_EQ(r["ok"], true);
    const json& c = r["result"]["commands"][0];
    EXPECT_EQ(c["path"], "/echo");
    EXPECT_EQ(c["args"][0]["name"], "text");
    EXPECT_EQ(c["args"][0]["required"], true);
    EXPECT_EQ(c["args"][0]["option"], "--text hello");
    EXPECT_EQ(c["args"][1]["min"], 1);
    EXPECT_EQ(c["args"][1]["max"], 10);
    EXPECT_EQ(c["args"][2]["option"], "--loud");
}

TEST(Registry, ReplyLinesAreOneLineOfValidJsonEvenForBadUtf8) {
    const std::string line = to_line(ok_reply(1, json{{"user", std::string("a\xff\xfe"
                                                                           "b")}}));
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    const json parsed = json::parse(line);
    EXPECT_EQ(parsed["result"]["user"],
              "a\xEF\xBF\xBD\xEF\xBF\xBD"
              "b");
}

TEST(Registry, PunchctlCommandFollowsThePath) {
    EXPECT_EQ(punchctl_command("/allocations"), "punchctl allocations");
    EXPECT_EQ(punchctl_command("/stats/drops"), "punchctl stats drops");
}

TEST(Registry, ErrorCodesRoundTripByName) {
    for (std::size_t i = 0; i < error_codes.size(); ++i) {
        ErrorCode code;
        ASSERT_TRUE(error_code_from_string(error_codes[i].name, code));
        EXPECT_EQ(static_cast<std::size_t>(code), i);
        EXPECT_FALSE(error_codes[i].help.empty());
    }
    ErrorCode code;
    EXPECT_FALSE(error_code_from_string("no_such_code", code));
}

// One named case per error the registry answers (style rule 16).
struct ErrorCase {
    std::string name;
    std::string line;
    ErrorCode code;
    std::string message;  // a substring
    std::string hint;     // exact; "" when none
};

void PrintTo(const ErrorCase& c, std::ostream* out) { *out << c.name; }

const std::vector<ErrorCase> error_cases = {
    {"NotJson", "this is not json", ErrorCode::malformed_request,
     R"(not a JSON object: expected one per line, e.g. {"command": "/status"})", ""},
    {"TruncatedJson", R"({"command": "/echo")", ErrorCode::malformed_request, "not a JSON object",
     ""},
    {"JsonArray", R"(["/echo"])", ErrorCode::malformed_request,
     R"(expected a JSON object, got an array of 1 element)", ""},
    // Parsing, copying and destroying a JSON value recurse per level: a deep one is refused
    // before it is parsed.
    {"DeeplyNestedArray", std::string(30000, '[') + std::string(30000, ']'),
     ErrorCode::malformed_request,
     R"(arrays and objects nested deeper than 16 levels; a request is {"command": "/path", )"
     R"("args": {...}})",
     ""},
    {"DeeplyNestedArgument",
     R"({"command": "/echo", "args": {"text": )" + std::string(15, '[') + std::string(15, ']') +
         "}}",
     ErrorCode::malformed_request, "nested deeper than 16 levels", ""},
    {"NestedToTheLimit",
     R"({"command": "/echo", "args": {"text": )" + std::string(14, '[') + std::string(14, ']') +
         "}}",
     ErrorCode::bad_argument, "expected a string of 1..8 bytes, got an array of 1 element",
     "punchctl echo --text hello"},
    {"BracketsInsideStringsDoNotNest",
     R"({"command": "/echo", "args": {"text": "[[[[[[[[[[[[[[[[[[[[\"{{{{{{{{{{{{{{{{{{"}})",
     ErrorCode::bad_argument, "expected a string of 1..8 bytes", "punchctl echo --text hello"},
    {"JsonString", R"("/echo")", ErrorCode::malformed_request, "expected a JSON object", ""},
    {"NoCommand", R"({"args": {}})", ErrorCode::malformed_request,
     R"(no "command"; e.g. {"command": "/status"})", ""},
    {"CommandNotAString", R"({"command": 5})", ErrorCode::malformed_request,
     R"("command" is not a string)", ""},
    {"UnknownRequestKey", R"({"command": "/echo", "arguments": {}})", ErrorCode::malformed_request,
     R"(unknown request key "arguments")", ""},
    {"ArgsNotAnObject", R"({"command": "/echo", "args": [1]})", ErrorCode::malformed_request,
     R"("args" must be an object, got an array of 1 element)", ""},
    {"UnknownCommandWithSuggestion", R"({"command": "/ecko"})", ErrorCode::unknown_command,
     R"(unknown command "/ecko" (did you mean /echo?); /help lists the commands)", "punchctl echo"},
    {"UnknownCommandWithoutSuggestion", R"({"command": "/allocations/kill"})",
     ErrorCode::unknown_command, R"(unknown command "/allocations/kill"; /help)", "punchctl help"},
    {"PathWithoutSlash", R"({"command": "echo"})", ErrorCode::unknown_command,
     R"(did you mean /echo?)", "punchctl echo"},
    {"UnknownArgument", R"({"command": "/echo", "args": {"text": "a", "volume": 3}})",
     ErrorCode::unknown_argument,
     R"(/echo takes no argument "volume"; it takes: text, times, loud)", "punchctl help echo"},
    {"ArgumentToACommandWithout", R"({"command": "/fail", "args": {"x": 1}})",
     ErrorCode::unknown_argument, R"(/fail takes no argument "x"; it takes none)",
     "punchctl help fail"},
    {"MissingRequired", R"({"command": "/echo"})", ErrorCode::missing_argument,
     R"(/echo needs argument "text" (what to echo))", "punchctl echo --text hello"},
    {"IntegerAsString", R"({"command": "/echo", "args": {"text": "a", "times": "3"}})",
     ErrorCode::bad_argument, R"(argument "times" of /echo: expected an integer 1..10, got "3")",
     "punchctl echo --times 3"},
    {"IntegerBelowMin", R"({"command": "/echo", "args": {"text": "a", "times": 0}})",
     ErrorCode::bad_argument, "expected an integer 1..10, got 0", "punchctl echo --times 3"},
    {"IntegerAboveMax", R"({"command": "/echo", "args": {"text": "a", "times": 11}})",
     ErrorCode::bad_argument, "got 11", "punchctl echo --times 3"},
    {"IntegerNegative", R"({"command": "/echo", "args": {"text": "a", "times": -1}})",
     ErrorCode::bad_argument, "got -1", "punchctl echo --times 3"},
    {"IntegerHuge", R"({"command": "/echo", "args": {"text": "a", "times": 18446744073709551615}})",
     ErrorCode::bad_argument, "got 18446744073709551615", "punchctl echo --times 3"},
    {"IntegerWithFraction", R"({"command": "/echo", "args": {"text": "a", "times": 2.5}})",
     ErrorCode::bad_argument, "got 2.5", "punchctl echo --times 3"},
    {"BooleanAsNumber", R"({"command": "/echo", "args": {"text": "a", "loud": 1}})",
     ErrorCode::bad_argument, R"(argument "loud" of /echo: expected true or false, got 1)",
     "punchctl echo --loud"},
    {"StringAsNumber", R"({"command": "/echo", "args": {"text": 5}})", ErrorCode::bad_argument,
     "expected a string of 1..8 bytes, got 5", "punchctl echo --text hello"},
    {"StringEmpty", R"({"command": "/echo", "args": {"text": ""}})", ErrorCode::bad_argument,
     R"(got "")", "punchctl echo --text hello"},
    {"StringTooLong", R"({"command": "/echo", "args": {"text": "123456789"}})",
     ErrorCode::bad_argument, R"(got "123456789")", "punchctl echo --text hello"},
    {"HelpForAnUnknownCommand", R"({"command": "/help", "args": {"command": "/ech"}})",
     ErrorCode::bad_argument,
     R"(argument "command" of /help: no command "/ech" (did you mean /echo?))", "punchctl help"},
    {"HandlerError", R"({"command": "/fail"})", ErrorCode::not_available, "no such role here",
     "punchctl status"},
    {"HandlerException", R"({"command": "/crash"})", ErrorCode::internal_error, "boom", ""},
};

class RegistryError : public testing::TestWithParam<ErrorCase> {};

TEST_P(RegistryError, AnswersTheCodeMessageAndHint) {
    const ErrorCase& c = GetParam();
    const Registry registry = make_registry();
    const json r = reply(registry, c.line);
    ASSERT_EQ(r["ok"], false) << r.dump();
    EXPECT_EQ(r["error"]["code"], std::string(to_string(c.code))) << r.dump();
    const std::string message = r["error"]["message"];
    EXPECT_NE(message.find(c.message), std::string::npos) << message;
    if (c.hint.empty())
        EXPECT_FALSE(r["error"].contains("hint")) << r.dump();
    else
        EXPECT_EQ(r["error"].value("hint", ""), c.hint) << r.dump();
}

INSTANTIATE_TEST_SUITE_P(Requests, RegistryError, testing::ValuesIn(error_cases),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                             return info.param.name;
                         });

TEST(RegistryError, IdIsEchoedOnErrorsAfterParsing) {
    const Registry registry = make_registry();
    EXPECT_EQ(reply(registry, R"({"id": "a", "command": "/nope"})")["id"], "a");
    EXPECT_EQ(reply(registry, R"({"id": 3, "command": "/echo", "args": {"text": 1}})")["id"], 3);
}

TEST(RegistryAdd, RefusesBadPathsNamesAndDuplicates) {
    Registry registry;
    const Handler handler = [](const Arguments&) { return json(); };
    EXPECT_THROW(registry.add({"status", "", {}, handler}), std::invalid_argument);
    EXPECT_THROW(registry.add({"/Status", "", {}, handler}), std::invalid_argument);
    EXPECT_THROW(registry.add({"/a//b", "", {}, handler}), std::invalid_argument);
    EXPECT_THROW(registry.add({"/a/", "", {}, handler}), std::invalid_argument);
    EXPECT_THROW(registry.add({"/help", "", {}, handler}), std::invalid_argument);
    EXPECT_THROW(registry.add({"/x", "", {}, nullptr}), std::invalid_argument);
    EXPECT_THROW(registry.add({"/x", "", {{"Bad", ArgumentType::string, "", "", false}}, handler}),
                 std::invalid_argument);
    EXPECT_THROW(registry.add({"/x",
                               "",
                               {{"a", ArgumentType::string, "", "", false},
                                {"a", ArgumentType::integer, "", "", false}},
                               handler}),
                 std::invalid_argument);
    EXPECT_THROW(
        registry.add({"/x", "", {{"a", ArgumentType::integer, "", "", false, 5, 4}}, handler}),
        std::invalid_argument);
    EXPECT_NO_THROW(registry.add({"/x-y/z_1", "", {}, handler}));
}

}  // namespace
}  // namespace control
