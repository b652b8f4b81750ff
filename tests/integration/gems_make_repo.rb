# frozen_string_literal: true
# gems_make_repo.rb - the content side of tests/integration/gems_fixture.sh (run by it; needs only Debian's ruby).
#
#   ruby gems_make_repo.rb sources SRC_DIR        writes SRC_DIR/<full_name>/{<name>.gemspec,lib/...,README.md} for
#                                                 every gem of the set below and SRC_DIR/order.txt ("DIR GEMSPEC" lines,
#                                                 in publish order); DIR/app/Gemfile is written by the shell side
#   ruby gems_make_repo.rb index ROOT MANIFEST    reads ROOT/gems/*.gem and writes the compact index exactly as
#                                                 rubygems.org serves it (ROOT/names, ROOT/versions, ROOT/info/<name>)
#                                                 plus MANIFEST (JSON)
#   ruby gems_make_repo.rb one SRC NAME VERSION [DEP:REQ[&REQ]...]   the source of one more gem (gems_publish)
#   ruby gems_make_repo.rb append ROOT MANIFEST GEM_FILE              publishes one more .gem into the compact index
#                                                 the way rubygems.org does (appends to /info/<name> and /versions)
#
# Compact index format (https://guides.rubygems.org/rubygems-org-compact-index-api/, and what bundler 2.3 parses):
#   /names          "---\n" + one gem name a line, sorted
#   /versions       "created_at: <ISO-8601 time>\n---\n" + "<name> <ver>[-<platform>],<ver>... <md5 of /info/<name>>\n"
#   /info/<name>    "---\n" + "<ver>[-<platform>] <dep>:<req>[&<req>],<dep>:<req>|checksum:<sha256 of the .gem>
#                   [,ruby:<req>[&<req>]][,rubygems:<req>[&<req>]]\n", one line a version in publish order; only runtime
#                   dependencies; a version without dependencies is "<ver> |checksum:..."; ruby: / rubygems: only when
#                   not ">= 0"
# ETag of each of these files on rubygems.org: the quoted MD5 of the body (the manifest has it, and the nginx of the
# fixture sends it).

require "digest"
require "fileutils"
require "json"
require "rubygems/package"
require "time"

PREFIX = "larder_test_"

# name, version, platform, runtime deps {name => [reqs]}, extras
GEMS = [
  ["base", "1.0.0", "ruby", {}, {}],
  ["util", "1.0.0", "ruby", { "base" => ["~> 1.0"] }, {}],
  ["util", "1.1.0", "ruby", { "base" => ["~> 1.0"] }, {}],
  ["util", "2.0.0", "ruby", { "base" => [">= 1.0"] }, {}],
  ["json", "1.0.0", "ruby", {}, { required_ruby_version: ">= 2.6" }],
  ["core", "1.0.0", "ruby", { "util" => ["~> 1.0"], "base" => [">= 1.0", "< 2"] }, {}],
  ["http", "1.0.0", "ruby", { "core" => ["~> 1.0"], "json" => [">= 0.9"] }, { dev: { "minitest" => ["~> 5.0"] } }],
  ["color", "0.3.1", "ruby", {}, {}],
  ["cli", "1.0.0", "ruby", { "core" => ["~> 1.0"], "color" => ["~> 0.3"] }, { exe: true }],
  ["native", "1.0.0", "ruby", {}, {}],
  ["native", "1.0.0", "x86_64-linux", {}, {}],
  ["assets", "1.0.0", "ruby", {}, { blob: 256 * 1024 }],
  ["pre", "1.0.0", "ruby", {}, {}],
  ["pre", "2.0.0.pre.1", "ruby", { "base" => ["~> 1.0"] }, {}],
].freeze

def write(path, text, mode = 0o644)
  FileUtils.mkdir_p(File.dirname(path))
  File.binwrite(path, text)
  File.chmod(mode, path)
end

def full_name(name, version, platform)
  platform == "ruby" ? "#{name}-#{version}" : "#{name}-#{version}-#{platform}"
end

# write_source SRC NAME VERSION PLATFORM DEPS EXTRA -> the gem's source directory (DEPS: full names => [reqs])
def write_source(src, name, version, platform, deps, extra)
  dir = File.join(src, full_name(name, version, platform))
  FileUtils.rm_rf(dir)
  files = ["lib/#{name}.rb", "README.md"]
  mod = name.split("_").map(&:capitalize).join
  requires = deps.keys.map {|d| "require \"#{d}\"\n" }.join
  write(File.join(dir, "lib/#{name}.rb"), <<~RUBY)
    # frozen_string_literal: true
    #{requires}module #{mod}
      VERSION = "#{version}"
      PLATFORM = "#{platform}"
      DEPENDS_ON = #{deps.keys.inspect}.freeze
      def self.describe
        "#{name} \#{VERSION} (\#{PLATFORM})"
      end
    end
  RUBY
  write(File.join(dir, "README.md"), "# #{name}\n\nA gem made by Larder's rubygems test fixture.\n")
  if extra[:exe]
    files << "exe/#{name}"
    write(File.join(dir, "exe/#{name}"), <<~RUBY, 0o755)
      #!/usr/bin/env ruby
      # frozen_string_literal: true
      require "#{name}"
      require "larder_test_core"
      puts "#{name} \#{#{mod}::VERSION} core \#{LarderTestCore::VERSION} util \#{LarderTestUtil::VERSION}"
    RUBY
  end
  if extra[:blob]
    files << "data/blob.bin"
    write(File.join(dir, "data/blob.bin"), Random.new(20_240_101).bytes(extra[:blob]))
  end
  spec = +""
  spec << "Gem::Specification.new do |s|\n"
  spec << "  s.name = #{name.inspect}\n"
  spec << "  s.version = #{version.inspect}\n"
  spec << "  s.platform = #{platform.inspect}\n" unless platform == "ruby"
  spec << "  s.summary = #{"Larder test gem #{name}".inspect}\n"
  spec << "  s.description = #{"A tiny pure-Ruby gem made by Larder's rubygems test fixture.".inspect}\n"
  spec << "  s.authors = [\"Larder tests\"]\n"
  spec << "  s.email = \"larder-tests@example.invalid\"\n"
  spec << "  s.homepage = \"https://example.invalid/larder\"\n"
  spec << "  s.license = \"MIT\"\n"
  spec << "  s.files = #{files.inspect}\n"
  spec << "  s.require_paths = [\"lib\"]\n"
  if extra[:exe]
    spec << "  s.bindir = \"exe\"\n"
    spec << "  s.executables = [#{name.inspect}]\n"
  end
  spec << "  s.required_ruby_version = #{extra[:required_ruby_version].inspect}\n" if extra[:required_ruby_version]
  deps.each {|d, reqs| spec << "  s.add_runtime_dependency #{d.inspect}, #{reqs.map(&:inspect).join(", ")}\n" }
  (extra[:dev] || {}).each {|d, reqs| spec << "  s.add_development_dependency #{d.inspect}, #{reqs.map(&:inspect).join(", ")}\n" }
  spec << "end\n"
  write(File.join(dir, "#{name}.gemspec"), spec)
  "#{dir} #{name}.gemspec"
end

def sources(src)
  src = File.expand_path(src)
  FileUtils.rm_rf(src)
  FileUtils.mkdir_p(src)
  order = GEMS.map do |short, version, platform, deps, extra|
    write_source(src, PREFIX + short, version, platform, deps.transform_keys {|d| PREFIX + d }, extra)
  end
  write(File.join(src, "order.txt"), order.join("\n") + "\n")
end

# one SRC NAME VERSION [DEP:REQ[&REQ]...] - the source of one more gem (for gems_publish); prints "DIR GEMSPEC"
def one(src, name, version, dep_args)
  deps = dep_args.to_h do |a|
    d, r = a.split(":", 2)
    [d, r.split("&")]
  end
  puts write_source(File.expand_path(src), name, version, "ruby", deps, {})
end

def reqs_text(requirement)
  requirement.as_list.join("&")
end

def key_of(spec)
  spec.platform.to_s == "ruby" ? spec.version.to_s : "#{spec.version}-#{spec.platform}"
end

def info_line(spec, sha256)
  deps = spec.runtime_dependencies.map {|d| "#{d.name}:#{reqs_text(d.requirement)}" }.join(",")
  reqs = ["checksum:#{sha256}"]
  reqs << "ruby:#{reqs_text(spec.required_ruby_version)}" unless spec.required_ruby_version.to_s == ">= 0"
  reqs << "rubygems:#{reqs_text(spec.required_rubygems_version)}" unless spec.required_rubygems_version.to_s == ">= 0"
  "#{key_of(spec)} #{deps}|#{reqs.join(",")}"
end

def version_entry(path, spec, sha256)
  {
    "version" => spec.version.to_s, "platform" => spec.platform.to_s, "full_name" => spec.full_name,
    "file" => File.basename(path), "gem_path" => "/gems/#{File.basename(path)}",
    "spec_path" => "/quick/Marshal.4.8/#{spec.full_name}.gemspec.rz", "sha256" => sha256, "size" => File.size(path),
    "prerelease" => spec.version.prerelease?,
    "dependencies" => spec.runtime_dependencies.map {|d| [d.name, d.requirement.to_s] }.to_h,
  }
end

# the quoted-MD5 ETag and sha-256 Repr-Digest rubygems.org sends for each compact index file
def file_entry(root, rel)
  body = File.binread(File.join(root, rel))
  { "md5" => Digest::MD5.hexdigest(body), "sha256_base64" => Digest::SHA256.base64digest(body), "size" => body.bytesize }
end

def index(root, manifest_path)
  gems = Dir[File.join(root, "gems", "*.gem")].map do |path|
    { path: path, spec: Gem::Package.new(path).spec, sha256: Digest::SHA256.file(path).hexdigest }
  end
  abort "no .gem files in #{root}/gems" if gems.empty?
  # publish order: the order of GEMS (as rubygems.org appends to /info in creation order)
  rank = {}
  GEMS.each_with_index {|g, i| rank[full_name(PREFIX + g[0], g[1], g[2])] = i }
  gems.sort_by! {|g| [rank.fetch(g[:spec].full_name, GEMS.size), g[:spec].full_name] }
  by_name = gems.group_by {|g| g[:spec].name }
  epoch = Integer(ENV.fetch("SOURCE_DATE_EPOCH", "1704067200"))
  created = Time.at(epoch).utc.iso8601

  FileUtils.mkdir_p(File.join(root, "info"))
  manifest = { "created_at" => created, "gems" => {}, "files" => {} }
  version_lines = []
  by_name.keys.sort.each do |name|
    info = "---\n" + by_name[name].map {|g| info_line(g[:spec], g[:sha256]) + "\n" }.join
    File.binwrite(File.join(root, "info", name), info)
    md5 = Digest::MD5.hexdigest(info)
    version_lines << "#{name} #{by_name[name].map {|g| key_of(g[:spec]) }.join(",")} #{md5}\n"
    entry = manifest["gems"][name] = { "info_path" => "/info/#{name}", "info_md5" => md5, "versions" => {} }
    by_name[name].each {|g| entry["versions"][key_of(g[:spec])] = version_entry(g[:path], g[:spec], g[:sha256]) }
  end
  File.binwrite(File.join(root, "names"), "---\n" + by_name.keys.sort.map {|n| n + "\n" }.join)
  File.binwrite(File.join(root, "versions"), "created_at: #{created}\n---\n" + version_lines.join)
  (["names", "versions"] + by_name.keys.sort.map {|n| "info/#{n}" }).each do |rel|
    manifest["files"]["/#{rel}"] = file_entry(root, rel)
  end
  File.write(manifest_path, JSON.pretty_generate(manifest) + "\n")
end

# append ROOT MANIFEST GEM_FILE - publish one more .gem (already in ROOT/gems) the way rubygems.org does: a line
# appended to /info/<name> (a new file for a new name) and "<name> <version> <new info md5>" appended to /versions;
# /names rewritten when the name is new
def append(root, manifest_path, gem_path)
  spec = Gem::Package.new(gem_path).spec
  sha = Digest::SHA256.file(gem_path).hexdigest
  manifest = JSON.parse(File.read(manifest_path))
  name = spec.name
  abort "#{spec.full_name} is already published" if manifest.dig("gems", name, "versions", key_of(spec))
  info_rel = "info/#{name}"
  info_file = File.join(root, info_rel)
  info = File.exist?(info_file) ? File.binread(info_file) : "---\n"
  info += info_line(spec, sha) + "\n"
  File.binwrite(info_file, info)
  md5 = Digest::MD5.hexdigest(info)
  File.open(File.join(root, "versions"), "ab") {|f| f << "#{name} #{key_of(spec)} #{md5}\n" }
  entry = manifest["gems"][name] ||= { "info_path" => "/#{info_rel}", "info_md5" => md5, "versions" => {} }
  entry["info_md5"] = md5
  entry["versions"][key_of(spec)] = version_entry(gem_path, spec, sha)
  names = manifest["gems"].keys.sort
  File.binwrite(File.join(root, "names"), "---\n" + names.map {|n| n + "\n" }.join)
  ["names", "versions", info_rel].each {|rel| manifest["files"]["/#{rel}"] = file_entry(root, rel) }
  File.write(manifest_path, JSON.pretty_generate(manifest) + "\n")
end

case ARGV[0]
when "sources" then sources(ARGV.fetch(1))
when "index" then index(ARGV.fetch(1), ARGV.fetch(2))
when "one" then one(ARGV.fetch(1), ARGV.fetch(2), ARGV.fetch(3), ARGV[4..])
when "append" then append(ARGV.fetch(1), ARGV.fetch(2), ARGV.fetch(3))
else abort "usage: gems_make_repo.rb sources SRC_DIR | index ROOT MANIFEST | one SRC NAME VERSION [DEP:REQ...] | " \
           "append ROOT MANIFEST GEM_FILE"
end
