# frozen_string_literal: true

# POSTS posts (default 1000), the same every time: bodies from a few hundred bytes to
# tens of KiB, so that rendering them allocates strings of many sizes.
count = BloatProbe::Setting.integer("POSTS", range: 1..1_000_000, default: 1000)
random = Random.new(1)
length = LogUniform.new(300..40_000, random: random)
words = %w[arena malloc heap chunk thread puma rails glibc jemalloc trim fragment page resident memory]
now = Time.current

Post.delete_all
rows = Array.new(count) do |i|
  size = length.draw
  body = Array.new(size / 6) { words[random.rand(words.size)] }.join(" ")[0, size]
  { id: i + 1, title: "Post #{i + 1}: #{words[random.rand(words.size)]}", body: body, created_at: now, updated_at: now }
end
rows.each_slice(200) { |slice| Post.insert_all(slice) }
puts "Seeded #{Post.count} posts"
