"""The item pipeline that downloads, checks and stores the images, and its parts."""
