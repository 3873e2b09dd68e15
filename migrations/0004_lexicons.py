from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_creation_source')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Lexicon',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='lexicons', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=100)),
                ('source_lang', fields.CharField(max_length=8)),
                ('target_lang', fields.CharField(max_length=8)),
                ('entries', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'lexicons', 'app': 'models', 'unique_together': (('owner_id', 'name'),), 'pk_attr': 'id', 'table_description': "A user's glossary for one language pair: terms a translation must render exactly."},
            bases=['Model'],
        ),
    ]
