-- Initial schema. Every row of game data is partitioned by guild_id (the token's
-- guild); times are UTC epoch milliseconds so both backends store them alike.
CREATE TABLE tokens (
    id INT AUTO_INCREMENT PRIMARY KEY,
    token_hash CHAR(64) NOT NULL,
    token_prefix VARCHAR(8) NOT NULL,
    guild_id INT NOT NULL,
    name VARCHAR(100) NOT NULL,
    player_id INT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NULL,
    UNIQUE KEY tokens_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE feeds (
    guild_id INT PRIMARY KEY,
    epoch VARCHAR(32) NOT NULL,
    last_seq BIGINT NOT NULL,
    -- bumped whenever a tile is added or its terrain changes: /worldmap caches on it
    map_version BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE tiles (
    guild_id INT NOT NULL,
    x SMALLINT NOT NULL,
    y SMALLINT NOT NULL,
    terrain VARCHAR(50) NOT NULL,
    seen_at BIGINT NOT NULL,
    seen_by VARCHAR(100) NOT NULL,
    PRIMARY KEY (guild_id, x, y)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE players (
    guild_id INT NOT NULL,
    id INT NOT NULL,
    name VARCHAR(100) NOT NULL,
    level INT NULL,
    wounds VARCHAR(100) NULL,
    pc_guild_id INT NULL,
    pc_guild_name VARCHAR(100) NULL,
    x SMALLINT NULL,
    y SMALLINT NULL,
    seen_at BIGINT NULL,
    seen_by VARCHAR(100) NULL,
    race VARCHAR(100) NULL,
    img VARCHAR(255) NULL,
    dla VARCHAR(25) NULL,
    pas INT NULL,
    pos INT NULL,
    xp INT NULL,
    xp_max INT NULL,
    pv INT NULL,
    pv_max INT NULL,
    att_m INT NULL,
    def_m INT NULL,
    deg_m INT NULL,
    arm INT NULL,
    mm_m INT NULL,
    pc INT NULL,
    profile_at BIGINT NULL,
    profile_by VARCHAR(100) NULL,
    group_at BIGINT NULL,
    group_by VARCHAR(100) NULL,
    PRIMARY KEY (guild_id, id),
    KEY players_pos (guild_id, x, y)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE monsters (
    guild_id INT NOT NULL,
    id INT NOT NULL,
    name VARCHAR(100) NOT NULL,
    level INT NULL,
    wounds VARCHAR(100) NULL,
    x SMALLINT NOT NULL,
    y SMALLINT NOT NULL,
    seen_at BIGINT NOT NULL,
    seen_by VARCHAR(100) NOT NULL,
    PRIMARY KEY (guild_id, id),
    KEY monsters_pos (guild_id, x, y)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE places (
    guild_id INT NOT NULL,
    id INT NOT NULL,
    name VARCHAR(100) NOT NULL,
    level INT NULL,
    town_id INT NULL,
    town_name VARCHAR(100) NULL,
    x SMALLINT NOT NULL,
    y SMALLINT NOT NULL,
    seen_at BIGINT NOT NULL,
    seen_by VARCHAR(100) NOT NULL,
    PRIMARY KEY (guild_id, id),
    KEY places_pos (guild_id, x, y)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE resources (
    guild_id INT NOT NULL,
    x SMALLINT NOT NULL,
    y SMALLINT NOT NULL,
    name VARCHAR(100) NOT NULL,
    level INT NULL,
    seen_at BIGINT NOT NULL,
    seen_by VARCHAR(100) NOT NULL,
    PRIMARY KEY (guild_id, x, y, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE objects (
    guild_id INT NOT NULL,
    id INT NOT NULL,
    name VARCHAR(100) NOT NULL,
    x SMALLINT NOT NULL,
    y SMALLINT NOT NULL,
    seen_at BIGINT NOT NULL,
    seen_by VARCHAR(100) NOT NULL,
    PRIMARY KEY (guild_id, id),
    KEY objects_pos (guild_id, x, y)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE uploads (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    guild_id INT NOT NULL,
    member VARCHAR(100) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    received_at BIGINT NOT NULL,
    body LONGBLOB NOT NULL,
    KEY uploads_received (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE events (
    guild_id INT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    body LONGBLOB NOT NULL,
    PRIMARY KEY (guild_id, seq),
    KEY events_at (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
