# frozen_string_literal: true

class Post < ApplicationRecord
  PER_PAGE = 50

  validates :title, :body, presence: true

  # One page of posts, cached in the process as the original app asked ("database caching
  # so networking with the database is not an issue").
  def self.cached_page(page)
    Rails.cache.fetch(["posts/page", page, maximum(:updated_at)], expires_in: 5.minutes) do
      order(:id).offset((page - 1) * PER_PAGE).limit(PER_PAGE).to_a
    end
  end
end
