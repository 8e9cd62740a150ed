# frozen_string_literal: true

class PostsController < ApplicationController
  def index
    @page = [params.fetch(:page, 1).to_i, 1].max
    @posts = Post.cached_page(@page)
  end

  def show
    @post = Post.find(params[:id])
  end
end
