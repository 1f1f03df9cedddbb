-- Demo data for a running stack (the services created the schemas). Idempotent: fixed ids,
-- ON CONFLICT DO NOTHING, so running it twice changes nothing.

INSERT INTO users.users (id, email, username, display_name, created_at) VALUES
  ('0190a000-0000-7000-8000-000000000001', 'maya@example.com',  'maya_films',   'Maya Okafor',   now() - interval '90 days'),
  ('0190a000-0000-7000-8000-000000000002', 'leo@example.com',   'leo_cooks',    'Leo Martins',   now() - interval '60 days'),
  ('0190a000-0000-7000-8000-000000000003', 'sana@example.com',  'sana_travels', 'Sana Iqbal',    now() - interval '30 days')
ON CONFLICT DO NOTHING;

INSERT INTO videos.videos (id, owner_id, title, description, duration_seconds, status, tags, object_key, created_at) VALUES
  ('0190b000-0000-7000-8000-000000000001', '0190a000-0000-7000-8000-000000000001',
   'Golden hour over the harbour', 'A four-minute timelapse shot from the north pier.', 241, 'ready',
   ARRAY['timelapse', 'city'], 'videos/0190b000-0000-7000-8000-000000000001.mp4', now() - interval '20 days'),
  ('0190b000-0000-7000-8000-000000000002', '0190a000-0000-7000-8000-000000000002',
   'Fresh pasta in ten minutes', 'Flour, eggs, a fork and patience.', 612, 'ready',
   ARRAY['cooking', 'pasta'], 'videos/0190b000-0000-7000-8000-000000000002.mp4', now() - interval '12 days'),
  ('0190b000-0000-7000-8000-000000000003', '0190a000-0000-7000-8000-000000000003',
   'Night train to the mountains', 'Sleeper cabin tour and the view at dawn.', 903, 'ready',
   ARRAY['travel', 'trains'], 'videos/0190b000-0000-7000-8000-000000000003.mp4', now() - interval '5 days'),
  ('0190b000-0000-7000-8000-000000000004', '0190a000-0000-7000-8000-000000000001',
   'Drone over the salt flats', 'Still processing: not in the public feed yet.', 188, 'processing',
   ARRAY['drone'], 'videos/0190b000-0000-7000-8000-000000000004.mp4', now() - interval '1 day'),
  ('0190b000-0000-7000-8000-000000000005', '0190a000-0000-7000-8000-000000000002',
   'Knife skills for beginners', 'Dicing, julienne and keeping your fingers.', 455, 'ready',
   ARRAY['cooking', 'basics'], 'videos/0190b000-0000-7000-8000-000000000005.mp4', now() - interval '2 days')
ON CONFLICT DO NOTHING;

INSERT INTO engagement.video_stats (video_id, views, likes) VALUES
  ('0190b000-0000-7000-8000-000000000001', 18240, 1312),
  ('0190b000-0000-7000-8000-000000000002', 40511, 3920),
  ('0190b000-0000-7000-8000-000000000003',  7730,  845),
  ('0190b000-0000-7000-8000-000000000005',  2210,  190)
ON CONFLICT DO NOTHING;
