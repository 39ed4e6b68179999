#include "runner/manifest/item_store.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nanobatch::manifest {

ItemStore::ItemStore(std::string path, ItemDefaults defaults)
    : path_(std::move(path)),
      defaults_(std::move(defaults)),
      claims_([this](NameClaims::Owner owner) { return IdOf(owner); }) {}

std::unique_ptr<ItemStore> ItemStore::Open(const std::string& path, const ItemDefaults& defaults,
                                           const Visit& visit, util::InputErrors& errors,
                                           ManifestStats* stats) {
  std::unique_ptr<ItemStore> store(new ItemStore(path, defaults));
  const bool yaml = FormatOf(path) == ManifestFormat::kYaml;
  if (!yaml) {
    // The descriptor every later read uses (the readers open their own; an edit in between is
    // caught by the fingerprints).
    std::string error;
    store->file_ = util::OpenInputFile(path, kMaxJsonlManifestBytes, error);
  }
  auto unique_sink = [&](Item&& item) {
    // Records first: NameClaims may read this item back when a later id's hash matches it.
    const auto index = static_cast<std::uint32_t>(store->records_.size());
    store->records_.push_back(
        Record{item.source_offset, item.source_fingerprint, item.source_length, item.line});
    if (yaml) store->in_memory_.push_back(item);
    auto other = store->claims_.Claim(item.id, index);
    if (!other) {
      visit(std::move(item), index);
      return;
    }
    store->records_.pop_back();
    if (yaml) store->in_memory_.pop_back();
    const std::string other_id = store->IdOf(*other);
    const std::string first = std::to_string(store->records_[*other].line);
    if (other_id != item.id) {
      errors.Add({path, item.line, "id",
                  "\"" + item.id + "\" and \"" + other_id + "\" (line " + first +
                      ") would write the same image file name (ids must differ in more than "
                      "case, and an id must not be another id followed by -1 to -15, the "
                      "names of that item's extra images); give one of them another id"});
    } else if (item.id_derived) {
      errors.Add({path, item.line, "id",
                  "item is identical to the one at line " + first + " (derived id " + item.id +
                      "); give each an explicit id to generate it more than once"});
    } else {
      errors.Add({path, item.line, "id", "\"" + item.id + "\" is already used at line " + first});
    }
  };
  ManifestStats read =
      yaml ? ReadYamlManifest(path, defaults, unique_sink, errors)
           : ReadJsonlManifest(path, defaults, unique_sink, errors,
                               [&](std::string_view id) { store->claims_.Prefetch(id); });
  read.items = store->records_.size();
  if (stats) *stats = read;
  return store;
}

std::optional<Item> ItemStore::Load(std::uint32_t index, std::string& error) const {
  if (!in_memory_.empty() || file_.get() < 0) {
    if (index < in_memory_.size()) return in_memory_[index];
    error = path_ + ": item " + std::to_string(index) + " is not in the manifest";
    return std::nullopt;
  }
  const Record& record = records_.at(index);
  std::string line(record.length, '\0');
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::pread(file_.get(), line.data() + done, line.size() - done,
                              static_cast<off_t>(record.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = path_ + ":" + std::to_string(record.line) + ": cannot read the item again: " +
              (n < 0 ? std::strerror(errno) : "the file is shorter than when it was validated");
      return std::nullopt;
    }
    done += static_cast<std::size_t>(n);
  }
  if (LineFingerprint(line) != record.fingerprint) {
    error = path_ + ":" + std::to_string(record.line) +
            ": the manifest changed since it was validated; nothing more is submitted from it "
            "(run again to validate the new version)";
    return std::nullopt;
  }
  util::InputErrors parse_errors;
  auto item = ParseJsonlLine(path_, line, record.line, record.offset, defaults_, parse_errors);
  if (!item) {
    error = path_ + ":" + std::to_string(record.line) + ": the item no longer parses";
    return std::nullopt;
  }
  return item;
}

std::string ItemStore::IdOf(std::uint32_t index) const {
  std::string error;
  auto item = Load(index, error);
  return item ? item->id : std::string();
}

}  // namespace nanobatch::manifest
