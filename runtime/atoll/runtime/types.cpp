#include "atoll/runtime/types.hpp"

#include "atoll/runtime/reactor.hpp"

#include <caf/actor_system_config.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace atl {

std::string to_string(restart_type x) {
  switch (x) {
    case restart_type::permanent: return "permanent";
    case restart_type::transient: return "transient";
    case restart_type::temporary: return "temporary";
  }
  return "?";
}

std::string to_string(child_type x) {
  return x == child_type::supervisor ? "supervisor" : "worker";
}

namespace {

void format_node(const tree_node& node, const std::string& prefix, bool last,
                 bool root, std::string& out) {
  std::string line = root ? std::string{} : prefix + (last ? "└─ " : "├─ ");
  line += node.role;
  line += fmt::format("  <{}, {}>", to_string(node.type), to_string(node.restart));
  if (node.running)
    line += fmt::format("  #{}", node.id);
  else
    line += "  (not running)";
  if (node.restart_count > 0)
    line += fmt::format("  restarts={}", node.restart_count);
  if (!node.strategy.empty())
    line += fmt::format("  {} intensity={}/{}ms recent={}", node.strategy, node.max_restarts,
                        node.period.count(), node.recent_restarts);
  for (const auto& d : node.details)
    line += fmt::format("  {}={}", d.key, d.value);
  out += line;
  out += '\n';
  auto child_prefix = root ? std::string{} : prefix + (last ? "   " : "│  ");
  for (size_t i = 0; i < node.children.size(); ++i)
    format_node(node.children[i], child_prefix, i + 1 == node.children.size(),
                false, out);
}

nlohmann::ordered_json node_to_json(const tree_node& node) {
  nlohmann::ordered_json j;
  j["role"] = node.role;
  j["id"] = node.id;
  j["type"] = to_string(node.type);
  j["restart"] = to_string(node.restart);
  j["restart_count"] = node.restart_count;
  j["running"] = node.running;
  if (!node.strategy.empty()) {
    j["strategy"] = node.strategy;
    j["max_restarts"] = node.max_restarts;
    j["period_ms"] = node.period.count();
    j["recent_restarts"] = node.recent_restarts;
  }
  if (!node.details.empty()) {
    auto details = nlohmann::ordered_json::object();
    for (const auto& d : node.details)
      details[d.key] = d.value;
    j["details"] = std::move(details);
  }
  auto children = nlohmann::ordered_json::array();
  for (const auto& child : node.children)
    children.push_back(node_to_json(child));
  j["children"] = std::move(children);
  return j;
}

/// `text` quoted for a DOT label (backslashes and quotes escaped).
std::string dot_quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

/// Writes `node` and its subtree; `next` numbers the nodes.
void dot_node(const tree_node& node, size_t& next, std::string& out) {
  auto me = next++;
  std::string label = node.role;
  if (node.running)
    label += fmt::format("\n#{}", node.id);
  if (!node.strategy.empty())
    label += fmt::format("\n{} {}/{}ms", node.strategy, node.max_restarts, node.period.count());
  if (node.restart_count > 0)
    label += fmt::format("\nrestarts={}", node.restart_count);
  for (const auto& d : node.details)
    label += fmt::format("\n{}={}", d.key, d.value);
  std::string style = node.running ? "solid" : "dashed";
  std::string color = node.restart_count > 0 ? "red" : "black";
  out += fmt::format("  n{} [label={}, shape={}, style={}, color={}];\n", me, dot_quote(label),
                     node.type == child_type::supervisor ? "box" : "ellipse", style, color);
  for (const auto& child : node.children) {
    auto child_id = next;
    dot_node(child, next, out);
    out += fmt::format("  n{} -> n{};\n", me, child_id);
  }
}

} // namespace

std::string tree_to_dot(const tree_node& root) {
  std::string out = "digraph supervision_tree {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n";
  size_t next = 0;
  dot_node(root, next, out);
  out += "}\n";
  return out;
}

std::string format_tree(const tree_node& root) {
  std::string out;
  format_node(root, {}, true, true, out);
  return out;
}

std::string tree_to_json(const tree_node& root, int indent) {
  return node_to_json(root).dump(indent);
}

size_t tree_size(const tree_node& root) {
  size_t n = 1;
  for (const auto& child : root.children)
    n += tree_size(child);
  return n;
}

void detail::add_runtime_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<child_info>("atl::child_info");
  cfg.add_message_type<child_counts>("atl::child_counts");
  cfg.add_message_type<tree_detail>("atl::tree_detail");
  cfg.add_message_type<tree_node>("atl::tree_node");
  cfg.add_message_type<scheduler_stats>("atl::scheduler_stats");
}

} // namespace atl
