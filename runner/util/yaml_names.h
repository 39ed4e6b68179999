#pragma once
// Names of YAML node kinds for error messages ("must be a string, not a list"), shared by the
// config and manifest readers.
//
// Example:
//   "must be a mapping, not " + std::string(YamlKindName(node))

#include <yaml-cpp/yaml.h>

#include <string_view>

namespace nanobatch::util {

inline std::string_view YamlKindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      return "undefined";
  }
  return "unknown";
}

}  // namespace nanobatch::util
