# frozen_string_literal: true

# POSTS posts (default 1000), the same every time: bodies from a few hundred bytes to
# tens of KiB, so that rendering them allocates strings of many sizes.
count = Integer(ENV.fetch("POSTS", 1000))
random = Random.new(1)
words = %w[arena malloc heap chunk thread puma rails glibc jemalloc trim fragment page resident memory]
now = Time.current

Post.delete_all
rows = Array.new(count) do |i|
  length = Math.exp(Math.log(300) + random.rand * (Math.log(40_000) - Math.log(300))).to_i
  body = Array.new(length / 6) { words[random.rand(words.size)] }.join(" ")[0, length]
  { id: i + 1, title: "Post #{i + 1}: #{words[random.rand(words.size)]}", body: body, created_at: now, updated_at: now }
end
rows.each_slice(200) { |slice| Post.insert_all(slice) }
puts "Seeded #{Post.count} posts"
