// merge_shards: the outputs of `nanobatch run --shard K/N` (one output directory per shard) merged
// into one dataset:
//
//   merge_shards OUT SHARD_DIR...
//
// Every shard's metadata.jsonl is read and checked first: each line names an image that exists in
// its shard with the recorded size, no id appears in two shards, no two images share a file name.
// Only when all of that holds are the images linked (or copied, across filesystems) into OUT and
// metadata.jsonl written there (atomically). Any conflict: every problem is printed, nothing is
// written, exit 1. Bad usage: exit 2.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "runner/fs/output_dir.h"

namespace {

namespace json = boost::json;

struct Image {
  std::string shard;
  std::string file_name;
  std::string line;  // the metadata line, as the shard wrote it
};

constexpr std::size_t kProblemsShown = 50;

// Links `from` to `to`, or copies it when a link cannot be made (another filesystem).
bool LinkOrCopy(const std::string& from, const std::string& to, std::string& error) {
  if (::link(from.c_str(), to.c_str()) == 0) return true;
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
  out.flush();
  if (!in || !out) {
    error = "cannot copy " + from + " to " + to + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: merge_shards OUT SHARD_DIR...\n";
    return 2;
  }
  const std::string out = argv[1];
  std::vector<std::string> problems;
  auto problem = [&](std::string text) { problems.push_back(std::move(text)); };
  std::map<std::string, std::string> shard_of_id;    // id -> shard dir
  std::map<std::string, std::string> owner_of_file;  // file name -> id
  std::vector<Image> images;
  std::size_t items = 0;

  // Directories by their canonical path: the same shard named twice (s0 and ./s0) would read as
  // every id in two shards, and OUT among the shards would write into one of them.
  auto canonical = [](const std::string& path) {
    std::error_code ignored;
    return std::filesystem::weakly_canonical(path, ignored).string();
  };
  std::map<std::string, std::string> named_as;  // canonical path -> the argument naming it
  named_as.emplace(canonical(out), out);
  for (int a = 2; a < argc; ++a) {
    const std::string shard = argv[a];
    if (auto [earlier, fresh] = named_as.emplace(canonical(shard), shard); !fresh) {
      problem(shard + ": " +
              (earlier->second == out ? std::string("is OUT, the directory to merge into")
                                      : "is given twice (as " + earlier->second + ")"));
      continue;
    }
    std::ifstream metadata(shard + "/metadata.jsonl");
    if (!metadata) {
      problem(shard + ": no metadata.jsonl (is it a nanobatch output directory?)");
      continue;
    }
    std::string line;
    int number = 0;
    std::set<std::string> ids_here;
    while (std::getline(metadata, line)) {
      ++number;
      if (line.empty()) continue;
      const std::string where = shard + "/metadata.jsonl:" + std::to_string(number);
      boost::system::error_code parse_error;
      json::value value = json::parse(line, parse_error);
      const json::object* object = parse_error ? nullptr : value.if_object();
      const json::value* id = object ? object->if_contains("id") : nullptr;
      const json::value* file = object ? object->if_contains("file_name") : nullptr;
      const json::value* bytes = object ? object->if_contains("bytes") : nullptr;
      if (!id || !id->is_string() || !file || !file->is_string() || !bytes ||
          !(bytes->is_int64() || bytes->is_uint64())) {
        problem(where + ": not a metadata line (id, file_name, bytes)");
        continue;
      }
      const std::string id_text(id->as_string());
      const std::string file_name(file->as_string());
      // A plain name, or one in a numbered directory (output.shard_size): never a path out.
      if (!nanobatch::fs::IsPublishedName(file_name)) {
        problem(where + ": file_name \"" + file_name + "\" is not a plain name");
        continue;
      }
      // One item's several images share its id within a shard; across shards an id is a conflict.
      if (ids_here.insert(id_text).second) {
        ++items;
        auto [it, fresh] = shard_of_id.emplace(id_text, shard);
        if (!fresh) problem(where + ": id \"" + id_text + "\" is also in " + it->second);
      }
      auto [owner, fresh_file] = owner_of_file.emplace(file_name, id_text);
      if (!fresh_file && owner->second != id_text) {
        problem(where + ": file name " + file_name + " is also the image of \"" + owner->second +
                "\"");
      }
      struct stat info;
      const std::string path = shard + "/" + file_name;
      if (::lstat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
        problem(where + ": image " + path + " is missing");
      } else if (static_cast<std::uint64_t>(info.st_size) !=
                 (bytes->is_int64() ? static_cast<std::uint64_t>(bytes->as_int64())
                                    : bytes->as_uint64())) {
        problem(where + ": image " + path + " has " + std::to_string(info.st_size) +
                " bytes, not the " + json::serialize(*bytes) + " recorded");
      }
      images.push_back(Image{shard, file_name, line});
    }
  }
  if (!problems.empty()) {
    for (std::size_t i = 0; i < problems.size() && i < kProblemsShown; ++i) {
      std::cerr << problems[i] << "\n";
    }
    if (problems.size() > kProblemsShown) {
      std::cerr << "... and " << problems.size() - kProblemsShown << " more\n";
    }
    std::cerr << "merge_shards: " << problems.size() << " problems; nothing was written\n";
    return 1;
  }

  std::string parent_error;
  if (!nanobatch::fs::MakeParentDirectories(out, parent_error)) {
    std::cerr << "merge_shards: " << parent_error << "\n";
    return 2;
  }
  if (::mkdir(out.c_str(), 0755) != 0 && errno != EEXIST) {
    std::cerr << "merge_shards: cannot create " << out << ": " << std::strerror(errno) << "\n";
    return 2;
  }
  const std::string merged_metadata = out + "/metadata.jsonl";
  if (::access(merged_metadata.c_str(), F_OK) == 0) {
    std::cerr << "merge_shards: " << merged_metadata << " exists; merge into a new directory\n";
    return 2;
  }
  std::string metadata;
  for (const Image& image : images) {
    std::string error;
    const std::string target = out + "/" + image.file_name;
    if (const auto slash = image.file_name.find('/'); slash != std::string::npos) {
      const std::string subdirectory = out + "/" + image.file_name.substr(0, slash);
      if (::mkdir(subdirectory.c_str(), 0755) != 0 && errno != EEXIST) {
        std::cerr << "merge_shards: cannot create " << subdirectory << ": " << std::strerror(errno)
                  << "\n";
        return 2;
      }
    }
    ::unlink(target.c_str());  // a leftover of an interrupted merge
    if (!LinkOrCopy(image.shard + "/" + image.file_name, target, error)) {
      std::cerr << "merge_shards: " << error << "\n";
      return 1;
    }
    metadata += image.line + "\n";
  }
  const int dir = ::open(out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::string error;
  if (dir < 0 || !nanobatch::fs::WriteFileAtomically(dir, "metadata.jsonl", metadata,
                                                     nanobatch::fs::kPublishedFileMode, error)) {
    std::cerr << "merge_shards: cannot write " << merged_metadata << ": " << error << "\n";
    return 1;
  }
  ::close(dir);
  std::cout << "merge_shards: " << items << " items (" << images.size() << " images) from "
            << argc - 2 << " shards into " << out << "\n";
  return 0;
}
