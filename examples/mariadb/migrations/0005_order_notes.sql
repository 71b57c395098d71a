ALTER TABLE orders ADD COLUMN note TEXT NULL;
CREATE TABLE order_events (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    order_id INT NOT NULL,
    happened_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY order_events_order (order_id)
) ENGINE=InnoDB;
